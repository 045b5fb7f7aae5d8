package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/adapters/kurrentdb/kurrentdbtest"
	"github.com/parleychat/parley/adapters/postgres/pgtest"
	"github.com/parleychat/parley/domain/domaintest"
)

// TestKurrentDBRestartEndToEnd runs chatd on the KurrentDB store (the
// in-process fake server) and restarts the server under it: meanwhile
// /readyz answers 503 naming the event store and writes answer 503
// unavailable; once the server is back chatd serves again, without a
// restart of its own, and the conversation continues.
func TestKurrentDBRestartEndToEnd(t *testing.T) {
	f, url := kurrentdbtest.Start(t, 256<<20)
	c := startChatd(t, pgtest.NewDatabase(t), map[string]string{
		"PARLEY_EVENT_STORE":   "kurrentdb",
		"PARLEY_KURRENTDB_URL": url,
	})
	tok := token(t, "42", time.Hour)
	id := c.createRoom(t, tok)
	ws := connect(t, c.wsURL(id, "token="+tok))
	readFrame(t, ws) // history
	send(t, ws, map[string]any{"type": "message", "message": "How much is the youth rent support?", "client_id": "8f0e6a1c-0000-4000-8000-000000000011"})
	if fs := readAnswer(t, ws); fs[len(fs)-1]["type"] != "answer" {
		t.Fatalf("before the restart: %v, want an answer", fs[len(fs)-1])
	}

	f.Stop()
	var ready struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	domaintest.WaitUntil(t, "/readyz to report the event store down", 20*time.Second, func() bool {
		code := c.api(t, "GET", "/readyz", "", "", &ready)
		return code == http.StatusServiceUnavailable && strings.Contains(ready.Checks["event_store"], "unavailable")
	})
	var failed struct {
		Error struct{ Code string } `json:"error"`
	}
	if code := c.api(t, "POST", "/api/rooms", tok, `{"title":"During the outage"}`, &failed); code != http.StatusServiceUnavailable || failed.Error.Code != "unavailable" {
		t.Errorf("POST /api/rooms while KurrentDB is down = %d %+v, want 503 unavailable", code, failed)
	}

	f.Restart(t)
	domaintest.WaitUntil(t, "/readyz to recover", 20*time.Second, func() bool { return c.api(t, "GET", "/readyz", "", "", &ready) == http.StatusOK })
	id2 := c.createRoom(t, tok)
	ws2 := connect(t, c.wsURL(id2, "token="+tok))
	readFrame(t, ws2)
	send(t, ws2, map[string]any{"type": "message", "message": "And after the restart?", "client_id": "8f0e6a1c-0000-4000-8000-000000000012"})
	if fs := readAnswer(t, ws2); fs[len(fs)-1]["type"] != "answer" {
		t.Fatalf("after the restart: %v, want an answer", fs[len(fs)-1])
	}
}
