package wsapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
)

// errorCount counts the error records logged through it.
type errorCount struct {
	mu sync.Mutex
	n  int
}

func (h *errorCount) Enabled(context.Context, slog.Level) bool { return true }
func (h *errorCount) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *errorCount) WithGroup(string) slog.Handler            { return h }
func (h *errorCount) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r.Level >= slog.LevelError {
		h.n++
	}
	return nil
}

func (h *errorCount) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

// TestDispatchSkipsWhatTheTapDelivered: once the tap has handed chunks to
// every connection of a room, the log subscription's copies are neither
// decoded nor encoded again. The subscription's copies carry data that
// cannot be decoded, so decoding one would log an error.
func TestDispatchSkipsWhatTheTapDelivered(t *testing.T) {
	errs := &errorCount{}
	h := NewHub(nil, slog.New(errs))
	c := newConn(nil, "chat", 16, Timing{}, nopMetrics{})
	c.lastQueued = 4 // the catch-up sent versions 0 to 4
	c.goLive()
	h.register(7, c)
	stream := room.Stream(7)

	answer := domain.UUID{1}
	chunk := func(seq int) domain.EventData {
		return domain.EventData{ID: domain.UUID{byte(seq)}, Type: room.TypeAnswerChunk,
			Data: []byte(`{"answer_id":"` + answer.String() + `","seq":` + strconv.Itoa(seq) + `,"delta":"x"}`)}
	}
	h.local(stream, domain.AppendResult{Version: 6}, []domain.EventData{chunk(0), chunk(1)})

	bad := func(v int64) domain.RecordedEvent {
		return domain.RecordedEvent{Stream: stream, Version: v, Type: room.TypeAnswerChunk, Data: []byte("not json"),
			Position: domain.Position{Commit: uint64(v), Prepare: uint64(v)}}
	}
	if err := h.dispatch(t.Context(), []domain.RecordedEvent{bad(5), bad(6)}); err != nil {
		t.Fatal(err)
	}
	if got := errs.count(); got != 0 {
		t.Errorf("dispatching versions the tap delivered logged %d errors, want 0 (they were decoded again)", got)
	}
	// The dispatch still counts as handed over.
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	close(h.ready)
	if err := h.WaitFor(ctx, domain.Position{Commit: 6, Prepare: 6}); err != nil {
		t.Errorf("WaitFor after the skipped dispatch: %v", err)
	}

	// A version no connection has yet is decoded (and here refused).
	if err := h.dispatch(t.Context(), []domain.RecordedEvent{bad(7)}); err != nil {
		t.Fatal(err)
	}
	if got := errs.count(); got != 1 {
		t.Errorf("dispatching a new version logged %d errors, want 1", got)
	}

	var got []int64
	for _, f := range c.take() {
		got = append(got, f.version)
	}
	if diff := cmp.Diff([]int64{5, 6}, got); diff != "" {
		t.Errorf("queued versions (-want +got):\n%s", diff)
	}
}

// TestChunkFrames: a chunk of several deltas is one frame with its text
// joined, the first delta's seq and the count; a chunk of one (the form
// older logs hold) says deltas 1.
func TestChunkFrames(t *testing.T) {
	answer := domain.UUID{1}
	at := time.Unix(1000, 0)
	tests := []struct {
		chunk room.AnswerChunk
		want  string
	}{
		{room.AnswerChunk{AnswerID: answer, Seq: 0, Delta: "Up "},
			`{"type":"chunk","answer_id":"` + answer.String() + `","seq":0,"deltas":1,"message":"Up ","is_streaming":true,"version":3}`},
		{room.NewAnswerChunk(answer, 1, []string{"to ", "200,", "000"}, []time.Time{at, at, at}),
			`{"type":"chunk","answer_id":"` + answer.String() + `","seq":1,"deltas":3,"message":"to 200,000","is_streaming":true,"version":3}`},
	}
	for _, tc := range tests {
		data, err := json.Marshal(tc.chunk)
		if err != nil {
			t.Fatal(err)
		}
		f, ok, err := eventFrame(domain.RecordedEvent{Stream: room.Stream(7), Version: 3, Type: room.TypeAnswerChunk, Data: data})
		if err != nil || !ok {
			t.Fatalf("eventFrame = %v, %v", ok, err)
		}
		if string(f.data) != tc.want {
			t.Errorf("frame\n got %s\nwant %s", f.data, tc.want)
		}
	}
}
