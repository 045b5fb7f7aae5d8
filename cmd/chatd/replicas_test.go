package main

import (
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/parleychat/parley/adapters/postgres/pgtest"
	"github.com/parleychat/parley/adapters/redis/redistest"
	"github.com/parleychat/parley/adapters/wsapi"
	"github.com/parleychat/parley/domain/domaintest"
)

// TestTwoReplicasShareLimits runs two chatd processes on one database and
// one Redis (with a key prefix of the test's own) and checks that a
// user's limits hold across them, as one process would hold them: the
// request rate, the cap on open connections (released when a socket
// closes), and the connections of a replica killed with SIGKILL, which
// stop counting once their leases expire.
func TestTwoReplicasShareLimits(t *testing.T) {
	bin := buildChatd(t)
	env := append(os.Environ(),
		"PARLEY_DATABASE_URL="+pgtest.NewDatabase(t),
		"PARLEY_REDIS_URL="+redistest.URL(),
		"PARLEY_REDIS_PREFIX="+redistest.Prefix(t, redistest.Client(t)),
		"PARLEY_HTTP_ADDR=127.0.0.1:0", "PARLEY_JWT_SECRET="+testSecret,
		"PARLEY_API_REQUESTS_PER_MINUTE=8", // one every 7.5 s, bursts of 2
		"PARLEY_MAX_CONNS_PER_USER=2",
		"PARLEY_LIMIT_LEASE_TTL=2s",
	)
	cmdA, baseA := startProcess(t, bin, append(env, "PARLEY_INSTANCE=a"))
	cmdB, baseB := startProcess(t, bin, append(env, "PARLEY_INSTANCE=b"))
	_ = cmdA
	a, b := &chatd{base: baseA}, &chatd{base: baseB}

	// The request rate: two requests in all, one on each replica; the
	// third is refused on either (each alone would still allow it).
	tok := token(t, "42", time.Hour)
	a.createRoom(t, tok)
	if code := b.api(t, "GET", "/api/rooms", tok, "", nil); code != http.StatusOK {
		t.Fatalf("second request, on b: %d", code)
	}
	if code := a.api(t, "GET", "/api/rooms", tok, "", nil); code != http.StatusTooManyRequests {
		t.Errorf("third request, on a (its second): %d, want 429: the burst of 2 is shared", code)
	}

	// The connection cap: two sockets in all.
	tok43 := token(t, "43", time.Hour)
	id := a.createRoom(t, tok43)
	onA := connect(t, a.wsURL(id, "token="+tok43))
	readFrame(t, onA)
	onB := connect(t, b.wsURL(id, "token="+tok43))
	readFrame(t, onB)
	expectClose(t, connect(t, a.wsURL(id, "token="+tok43)), wsapi.CloseRateLimited)
	// Closing b's socket frees its slot for a.
	onB.Close()
	domaintest.WaitUntil(t, "b's closed socket to free its slot", 20*time.Second, func() bool {
		ws := connect(t, a.wsURL(id, "token="+tok43))
		f, ok := tryReadFrame(ws)
		if ok && f["type"] == "history" {
			return true
		}
		ws.Close()
		return false
	})

	// A replica that dies holding sockets: its leases expire.
	tok44 := token(t, "44", time.Hour)
	id44 := b.createRoom(t, tok44)
	for range 2 {
		ws := connect(t, b.wsURL(id44, "token="+tok44))
		readFrame(t, ws)
	}
	if err := cmdB.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmdB.Wait()
	// Its sockets still count right after the kill, and stop counting once
	// their 2 s leases lapse unrenewed. How soon is not asserted (a loaded
	// machine delays everything); that they lapse at all is: without lease
	// expiry they would count for good and the wait would fail.
	expectClose(t, connect(t, a.wsURL(id44, "token="+tok44)), wsapi.CloseRateLimited)
	domaintest.WaitUntil(t, "the dead replica's leases to expire", 20*time.Second, func() bool {
		ws := connect(t, a.wsURL(id44, "token="+tok44))
		f, ok := tryReadFrame(ws)
		return ok && f["type"] == "history"
	})
}

// tryReadFrame reads one frame, reporting false when the socket closes.
func tryReadFrame(ws interface {
	ReadJSON(v any) error
	SetReadDeadline(time.Time) error
}) (frameMap, bool) {
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	var f frameMap
	if err := ws.ReadJSON(&f); err != nil {
		return nil, false
	}
	return f, true
}
