package httpapi_test

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/adapters/httpapi"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestRequestLimit(t *testing.T) {
	clock := &fakeClock{now: epoch}
	f := newFixture(t, func(c *httpapi.Config, d *httpapi.Deps) {
		c.RequestsPerMinute, c.RequestBurst = 30, 3 // a token every 2s
		d.Now = clock.Now
	})
	create := request{method: "POST", path: "/api/rooms", token: aliceToken, body: `{"title":"t"}`}
	list := request{method: "GET", path: "/api/rooms", token: aliceToken}
	for i, req := range []request{create, list, create} { // the burst, reads and writes alike
		if r := f.do(t, req); r.status >= 300 {
			t.Fatalf("request %d of the burst: %d %s", i+1, r.status, r.body)
		}
	}
	r := f.do(t, create)
	if r.status != http.StatusTooManyRequests || r.errorCode(t) != "rate_limited" {
		t.Fatalf("over the burst: %d %s, want 429 rate_limited", r.status, r.body)
	}
	if got := r.header.Get("Retry-After"); got != "2" {
		t.Errorf("Retry-After = %q, want 2 (seconds to the next token)", got)
	}
	f.rooms.mu.Lock()
	n := len(f.rooms.rooms)
	f.rooms.mu.Unlock()
	if n != 2 {
		t.Errorf("%d rooms exist, want 2: the refused create must not create one", n)
	}
	if r := f.do(t, request{method: "GET", path: "/api/rooms", token: bobToken}); r.status != http.StatusOK {
		t.Errorf("another user: %d, want 200: budgets are per user", r.status)
	}
	if r := f.do(t, request{method: "GET", path: "/livez"}); r.status != http.StatusOK {
		t.Errorf("/livez: %d, want 200: only /api routes are limited", r.status)
	}
	clock.advance(time.Second)
	if r := f.do(t, list); r.status != http.StatusTooManyRequests {
		t.Errorf("after 1s: %d, want still 429", r.status)
	}
	clock.advance(time.Second)
	if r := f.do(t, list); r.status != http.StatusOK {
		t.Errorf("after 2s: %d, want 200: a token is back", r.status)
	}
	if r := f.do(t, list); r.status != http.StatusTooManyRequests {
		t.Errorf("right after: %d, want 429: only one token came back", r.status)
	}
}
