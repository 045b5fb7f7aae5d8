package kurrentdb

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/domaintest"
)

// TestOutage takes the fake server down for 3 s, as a KurrentDB restart
// does (listener closed, connections dropped, the same port and data
// afterwards), while the contract's writers and subscriptions run.
func TestOutage(t *testing.T) {
	f, url := startFakeServer(t, DefaultMaxAppendSize)
	s := fakeStoreOver(t, url, Options{MaxRetryDelay: time.Second})
	domaintest.RunOutageTest(t, s, func(t *testing.T) { f.Outage(t, 3*time.Second) })
}

// TestNoConnectionPileUpOnUnavailable: each "Server Is Too Busy" makes
// the v4 client drop its connection without closing it and open another;
// the store retires such a client and closes it, so concurrent writers
// meeting 30 such replies leave no more than the current connection open.
func TestNoConnectionPileUpOnUnavailable(t *testing.T) {
	f, url := startFakeServer(t, DefaultMaxAppendSize)
	s := fakeStoreOver(t, url, Options{MinRetryDelay: 5 * time.Millisecond, MaxRetryDelay: 20 * time.Millisecond})
	const busy, writers = 30, 8
	f.RefuseBusy(busy)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			evs := domaintest.Events(t, "MessagePosted", 1)
			deadline := time.Now().Add(30 * time.Second)
			for time.Now().Before(deadline) {
				_, err := s.Append(t.Context(), fmt.Sprintf("room-%d", w), domain.NoStream(), evs...)
				if err == nil {
					return
				}
				if domain.ErrorCode(err) != domain.EUNAVAILABLE {
					t.Errorf("writer %d: %v, want unavailable while the server is busy", w, err)
					return
				}
				time.Sleep(time.Millisecond)
			}
			t.Errorf("writer %d: no append succeeded within 30 s", w)
		})
	}
	wg.Wait()
	if left := f.BusyLeft(); left != 0 {
		t.Fatalf("%d busy replies left: the writers did not meet them all", left)
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.OpenConns() > 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := f.OpenConns(); n > 1 {
		t.Errorf("%d connections open to the server after %d busy replies, want 1", n, busy)
	}
}
