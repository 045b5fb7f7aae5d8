package prom_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/adapters/prom"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/chat"
)

// scrape returns the text m's handler serves.
func scrape(t *testing.T, m *prom.Metrics) string {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: status %d", resp.StatusCode)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestMetricsExposition(t *testing.T) {
	m := prom.New()
	m.ObserveAppend(3*time.Millisecond, 3, nil)
	m.ObserveAppend(time.Millisecond, 1, &domain.ConflictError{Stream: "room-1", Actual: 4})
	m.ObserveAppend(time.Millisecond, 2, errors.New("connection reset"))
	m.ObserveAnswer(chat.OutcomeComplete, 2*time.Second)
	m.ObserveAnswer(chat.OutcomeCancelled, time.Second)
	m.ConnOpened("chat")
	m.ConnOpened("chat")
	m.ConnOpened("audit")
	m.ConnClosed("chat", 1001)
	m.FrameIn("message")
	m.FrameIn("made-up-by-a-client")
	m.FrameOut("chunk")
	m.FrameOut("chunk")
	m.SendQueueDrop()
	m.ObserveHTTP("GET /api/rooms/{id}", 404, 5*time.Millisecond)
	m.ObserveHTTP("POST /api/rooms", 201, 7*time.Millisecond)
	m.SetProjectionLag("chatlog", 12*time.Second)
	m.RoomRebuilt("memory")
	m.RoomRebuilt("memory")

	got := scrape(t, m)
	for _, want := range []string{
		`parley_event_appends_total{result="ok"} 1`,
		`parley_event_appends_total{result="conflict"} 1`,
		`parley_event_appends_total{result="internal"} 1`,
		`parley_event_append_duration_seconds_count 3`,
		`parley_events_appended_total 3`,
		`parley_answers_total{outcome="complete"} 1`,
		`parley_answers_total{outcome="cancelled"} 1`,
		`parley_answer_duration_seconds_count{outcome="complete"} 1`,
		`parley_ws_connections{kind="chat"} 1`,
		`parley_ws_connections{kind="audit"} 1`,
		`parley_ws_connections_opened_total{kind="chat"} 2`,
		`parley_ws_connections_closed_total{code="1001",kind="chat"} 1`,
		`parley_ws_frames_received_total{type="message"} 1`,
		`parley_ws_frames_received_total{type="other"} 1`,
		`parley_ws_frames_sent_total{type="chunk"} 2`,
		`parley_ws_send_queue_overflows_total 1`,
		`parley_http_requests_total{route="GET /api/rooms/{id}",status="404"} 1`,
		`parley_http_requests_total{route="POST /api/rooms",status="201"} 1`,
		`parley_http_request_duration_seconds_count{route="POST /api/rooms"} 1`,
		`parley_projection_lag_seconds{projection="chatlog"} 12`,
		`parley_projection_rooms_rebuilt_total{projection="memory"} 2`,
		"# TYPE go_goroutines gauge", // the runtime collector is registered
	} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(got, "made-up-by-a-client") {
		t.Errorf("/metrics has a series labelled with a client's made-up frame type")
	}
}

// TestMetricsRegistriesAreIndependent: two Metrics in one process (two
// servers in a test) neither panic on registration nor share counts.
func TestMetricsRegistriesAreIndependent(t *testing.T) {
	a, b := prom.New(), prom.New()
	a.SendQueueDrop()
	if got := scrape(t, b); !strings.Contains(got, "parley_ws_send_queue_overflows_total 0") {
		t.Errorf("second registry sees the first one's count:\n%s", grep(got, "overflows"))
	}
	if got := scrape(t, a); !strings.Contains(got, "parley_ws_send_queue_overflows_total 1") {
		t.Errorf("first registry lost its count:\n%s", grep(got, "overflows"))
	}
}

func grep(text, sub string) string {
	var out []string
	for line := range strings.Lines(text) {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "")
}
