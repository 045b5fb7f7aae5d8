package projectiontest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/domain"
)

// slowAppender takes its time over every append, as a loaded database
// does, and counts the appends in flight.
type slowAppender struct {
	mu                  sync.Mutex
	inFlight, done, max int
	cancelled           int // appends whose context ended while in flight
}

func (a *slowAppender) Append(ctx context.Context, _ string, _ domain.ExpectedVersion, events ...domain.EventData) (domain.AppendResult, error) {
	a.mu.Lock()
	a.inFlight++
	a.max = max(a.max, a.inFlight)
	a.mu.Unlock()
	select {
	case <-time.After(20 * time.Millisecond):
	case <-ctx.Done():
		a.mu.Lock()
		a.cancelled++
		a.mu.Unlock()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.inFlight--
	a.done++
	return domain.AppendResult{Version: int64(len(events) - 1)}, nil
}

// TestWritersStopAfterTheirAppendsReturn: when Stop returns, no append of
// the writers is in flight, and none was cut short by a cancelled
// context: an append the writers gave up on could still commit after
// the test looked at the log (issue 17's flaky rebuild tests).
func TestWritersStopAfterTheirAppendsReturn(t *testing.T) {
	a := &slowAppender{}
	w := StartWriters(t, a, 1, 1)
	for {
		a.mu.Lock()
		started := a.done + a.inFlight
		a.mu.Unlock()
		if started >= 3 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := w.Stop(); err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.inFlight != 0 || a.cancelled != 0 {
		t.Errorf("after Stop: %d appends in flight, %d cut short; want none", a.inFlight, a.cancelled)
	}
	if a.max < 2 {
		t.Errorf("at most %d appends in flight at once; the writers should append concurrently", a.max)
	}
}
