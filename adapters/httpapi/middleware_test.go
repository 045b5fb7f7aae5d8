package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gorilla/websocket"

	"github.com/parleychat/parley/adapters/httpapi"
)

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestAccessLogHasNoSecrets: tokens in the Authorization header, in the
// WebSocket URL's ?token= and ?ticket=, and in a rejected token never
// reach the log; the path, route and user do.
func TestAccessLogHasNoSecrets(t *testing.T) {
	f := newFixture(t, nil)
	mine := f.rooms.add("alice", "Mine")
	f.do(t, request{method: "GET", path: "/ws/chat/42/?token=secret-value"})
	f.do(t, request{method: "GET", path: "/ws/audit/42/?ticket=secret-ticket&after=3"})
	f.do(t, request{method: "GET", path: "/ws/chat/42/?token=secret-value", header: map[string]string{"Authorization": "Bearer secret-in-header"}})
	f.do(t, request{method: "GET", path: "/api/rooms/" + itoa(mine) + "?token=secret-query", token: aliceToken})
	f.do(t, request{method: "GET", path: "/api/rooms", token: "secret-forged-token"})
	f.do(t, request{method: "GET", path: "/nowhere?ticket=secret-ticket"})
	lines := f.closeAndLogs(t)

	if log := f.logs.String(); strings.Contains(log, "secret") {
		t.Errorf("the log holds a secret:\n%s", log)
	}
	type access struct{ Route, Path, Status, UserID string }
	var got []access
	for _, l := range lines {
		if l["msg"] != "http request" {
			t.Errorf("unexpected log line %v", l)
			continue
		}
		uid, _ := l["user_id"].(string)
		got = append(got, access{fmt.Sprint(l["route"]), fmt.Sprint(l["path"]), fmt.Sprint(l["status"]), uid})
		for _, k := range []string{"request_id", "method", "duration"} {
			if _, ok := l[k]; !ok {
				t.Errorf("log line %v lacks %q", l, k)
			}
		}
	}
	want := []access{
		{"GET /ws/chat/{room_id}/{$}", "/ws/chat/42/", "200", ""},
		{"GET /ws/audit/{room_id}/{$}", "/ws/audit/42/", "200", ""},
		{"GET /ws/chat/{room_id}/{$}", "/ws/chat/42/", "200", ""},
		{"GET /api/rooms/{id}", "/api/rooms/" + itoa(mine), "200", "alice"},
		{"GET /api/rooms", "/api/rooms", "401", ""},
		{"unmatched", "/nowhere", "404", ""},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("access lines (-want +got):\n%s", diff)
	}
}

// TestPanicRecovery: a panicking handler answers 500 "internal error" and
// is logged once, at error level, with the request id the client got.
func TestPanicRecovery(t *testing.T) {
	f := newFixture(t, nil)
	f.rooms.panics = true
	resp := f.do(t, request{method: "POST", path: "/api/rooms", token: aliceToken, body: `{"title":"x"}`})
	want := map[string]any{"error": map[string]any{"code": "internal", "message": "internal error"}}
	if diff := cmp.Diff(want, resp.json(t)); diff != "" || resp.status != 500 {
		t.Errorf("status %d; body (-want +got):\n%s", resp.status, diff)
	}
	if strings.Contains(string(resp.body), "boom") {
		t.Errorf("the panic's value reached the client: %s", resp.body)
	}
	// The server goes on serving.
	if resp := f.do(t, request{method: "GET", path: "/livez"}); resp.status != 200 {
		t.Errorf("after a panic: status %d, want 200", resp.status)
	}
	lines := f.closeAndLogs(t)
	if len(lines) != 2 {
		t.Fatalf("%d log lines, want 2 (the panic's and /livez's):\n%s", len(lines), f.logs.String())
	}
	l := lines[0]
	if l["level"] != "ERROR" || l["error"] != "panic: fake rooms: boom" || l["request_id"] != resp.header.Get("X-Request-ID") || l["stack"] == nil {
		t.Errorf("log line %v: want level ERROR, the panic, a stack and request id %q", l, resp.header.Get("X-Request-ID"))
	}
}

func TestRequestID(t *testing.T) {
	f := newFixture(t, nil)
	a := f.do(t, request{method: "GET", path: "/livez"}).header.Get("X-Request-ID")
	b := f.do(t, request{method: "GET", path: "/livez"}).header.Get("X-Request-ID")
	if a == "" || a == b {
		t.Errorf("request ids %q and %q: want two different non-empty ones", a, b)
	}
	if got := f.do(t, request{method: "GET", path: "/livez", header: map[string]string{"X-Request-ID": "edge-7f3a.1"}}).header.Get("X-Request-ID"); got != "edge-7f3a.1" {
		t.Errorf("a proxy's request id came back as %q", got)
	}
	if got := f.do(t, request{method: "GET", path: "/livez", header: map[string]string{"X-Request-ID": "bad id\"{"}}).header.Get("X-Request-ID"); got == "" || strings.ContainsAny(got, " \"{") {
		t.Errorf("a malformed request id came back as %q, want a fresh one", got)
	}
}

func TestUnmatched(t *testing.T) {
	f := newFixture(t, nil)
	tests := []struct {
		method, path string
		wantStatus   int
		wantAllow    string
	}{
		{"GET", "/nope", 404, ""},
		{"GET", "/api/rooms/1/nope", 404, ""},
		{"GET", "/ws/chat/42/extra", 404, ""},
		{"PUT", "/api/rooms", 405, "GET, HEAD, OPTIONS, POST"},
		{"POST", "/ws/chat/42/", 405, "GET, HEAD"},
	}
	for _, tc := range tests {
		resp := f.do(t, request{method: tc.method, path: tc.path, token: aliceToken})
		if resp.status != tc.wantStatus {
			t.Errorf("%s %s: status %d, body %s; want %d", tc.method, tc.path, resp.status, resp.body, tc.wantStatus)
		}
		resp.errorCode(t) // a JSON error body
		if got := resp.header.Get("Allow"); got != tc.wantAllow {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, got, tc.wantAllow)
		}
	}
}

func TestWebSocketMounts(t *testing.T) {
	f := newFixture(t, nil)
	for _, tc := range []struct{ path, want string }{
		{"/ws/chat/42/", "chat 42"},
		{"/ws/audit/7/?after=3", "audit 7"},
	} {
		if resp := f.do(t, request{method: "GET", path: tc.path}); resp.status != 200 || string(resp.body) != tc.want {
			t.Errorf("GET %s: status %d, body %q; want 200 %q", tc.path, resp.status, resp.body, tc.want)
		}
	}
	f = newFixture(t, func(_ *httpapi.Config, d *httpapi.Deps) { d.ChatWS, d.AuditWS = nil, nil })
	if resp := f.do(t, request{method: "GET", path: "/ws/chat/42/"}); resp.status != 404 {
		t.Errorf("no gateway: status %d, want 404", resp.status)
	}
}

// TestWebSocketUpgradeThroughMiddleware: a real gorilla/websocket upgrade
// works through the middleware (which must pass Hijack on), and the
// access line shows 101.
func TestWebSocketUpgradeThroughMiddleware(t *testing.T) {
	upgrader := websocket.Upgrader{}
	ws := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		c.WriteMessage(websocket.TextMessage, []byte(`{"type":"history","room":"`+r.PathValue("room_id")+`"}`))
		c.ReadMessage() // until the client closes
	})
	f := newFixture(t, func(_ *httpapi.Config, d *httpapi.Deps) { d.ChatWS = ws })
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(f.srv.URL, "http") + "/ws/chat/42/?token=secret-value"
	c, _, err := websocket.DefaultDialer.DialContext(ctx, url, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	_, msg, err := c.ReadMessage()
	if err != nil || string(msg) != `{"type":"history","room":"42"}` {
		t.Errorf("first frame %q, %v", msg, err)
	}
	c.Close()
	// The access line is written when the handler returns, after the
	// connection closed; hijacked connections are not waited for by Close.
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(f.logs.String(), `"status":101`) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	log := f.logs.String()
	if !strings.Contains(log, `"status":101`) || !strings.Contains(log, `"path":"/ws/chat/42/"`) {
		t.Errorf("no access line with status 101 for the upgrade:\n%s", log)
	}
	if strings.Contains(log, "secret") {
		t.Errorf("the log holds the token:\n%s", log)
	}
}

func TestNewServerRequiresDeps(t *testing.T) {
	defer func() {
		if v := recover(); v == nil || !strings.Contains(fmt.Sprint(v), "Deps.Verifier") {
			t.Errorf("NewServer without a Verifier: panic %v, want one naming Deps.Verifier", v)
		}
	}()
	httpapi.NewServer(httpapi.Config{}, httpapi.Deps{})
}
