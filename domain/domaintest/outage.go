package domaintest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleychat/parley/domain"
)

// Outage test settings.
const (
	// OutageCallTimeout is each append's deadline in RunOutageTest.
	OutageCallTimeout = time.Second
	// OutageSlack is how far past its deadline a call may return: the
	// scheduling noise of a loaded machine, not a store's retry loop.
	OutageSlack     = 500 * time.Millisecond
	outageWriters   = 8
	outageAfter     = 5 // appends each writer makes after the outage
	goroutineSettle = 20 * time.Second
)

// RunOutageTest runs the contract's live-subscription and append cases
// across an outage of the store's server. While writers append (each to a
// stream of its own, at exact versions, retrying a failed append with the
// same events and expectation until it succeeds, as a client must) and two
// subscriptions (one to the global log, one to a stream) follow, outage is
// called; it takes the server down and returns once it is back.
//
// It checks that every call returns within its deadline, with the
// unavailable code or its context's error, also while the server is down;
// that the subscriptions outlive the outage and deliver every acknowledged
// event exactly once, in order; that the log holds every acknowledged
// event once, in order; that nothing hangs once the subscriptions are
// cancelled; and that the process's goroutines return to their count
// before the test. Run it alone (not in parallel), on a store already
// connected.
func RunOutageTest(t *testing.T, s domain.EventStore, outage func(t *testing.T)) {
	prefix := UniquePrefix(t)
	stream := func(w int) string { return fmt.Sprintf("%sroom-%d", prefix, w) }
	// Warm up, so that the baseline counts the store's idle connection.
	mustAppend(t, s, prefix+"warm-up", domain.NoStream(), Events(t, "Warm", 1)...)
	time.Sleep(100 * time.Millisecond)
	baseline := runtime.NumGoroutine()

	ctx, cancel := context.WithCancel(t.Context())
	all, stream0 := newCollector(), newCollector()
	var subs sync.WaitGroup
	subErrs := make(chan error, 2)
	subs.Go(func() {
		subErrs <- s.SubscribeAll(ctx, domain.SubscribeAllOptions{StreamPrefix: prefix + "room-"}, all.handle)
	})
	subs.Go(func() { subErrs <- s.SubscribeStream(ctx, stream(0), domain.NoVersion, stream0.handle) })
	stopSubs := func() {
		cancel()
		done := make(chan struct{})
		go func() { subs.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(waitTimeout):
			t.Fatalf("subscriptions did not return within %v of cancellation", waitTimeout)
		}
	}
	defer stopSubs()

	var (
		down     atomic.Bool  // the outage is under way
		failed   atomic.Int64 // appends that failed while the server was down
		after    atomic.Int64 // writers done with their appends after the outage
		recovery = make(chan struct{})
		wg       sync.WaitGroup
		acked    = make([][]domain.UUID, outageWriters)
	)
	for w := range outageWriters {
		wg.Go(func() {
			version := domain.NoVersion
			afterOutage := 0
			for afterOutage < outageAfter {
				evs := Events(t, "MessagePosted", 1+w%3)
				for {
					cctx, ccancel := context.WithTimeout(ctx, OutageCallTimeout)
					began := time.Now()
					res, err := s.Append(cctx, stream(w), domain.Exact(version), evs...)
					took := time.Since(began)
					ccancel()
					if took > OutageCallTimeout+OutageSlack {
						t.Errorf("writer %d: an append took %v, past its %v deadline (err %v)", w, took, OutageCallTimeout, err)
					}
					if err == nil {
						version = res.Version
						acked[w] = append(acked[w], ids(toRecorded(evs))...)
						break
					}
					if ctx.Err() != nil {
						return
					}
					if code := domain.ErrorCode(err); code != domain.EUNAVAILABLE && !errors.Is(err, context.DeadlineExceeded) {
						t.Errorf("writer %d: append failed with %v (code %s), want unavailable or the deadline", w, err, code)
						return
					}
					if down.Load() {
						failed.Add(1)
					}
					time.Sleep(20 * time.Millisecond)
				}
				select {
				case <-recovery:
					afterOutage++
				default:
					time.Sleep(10 * time.Millisecond)
				}
			}
			after.Add(1)
		})
	}

	time.Sleep(300 * time.Millisecond) // appends before the outage
	down.Store(true)
	outage(t)
	down.Store(false)
	close(recovery)
	writersDone := make(chan struct{})
	go func() { wg.Wait(); close(writersDone) }()
	select {
	case <-writersDone:
	case <-time.After(waitTimeout):
		cancel()
		select {
		case <-writersDone:
		case <-time.After(10 * time.Second):
			var b strings.Builder
			_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
			t.Fatalf("appends still running 10 s after their context was cancelled (they ignore it):\n%s", b.String())
		}
		t.Fatalf("after the outage, %d of %d writers finished their appends within %v", after.Load(), outageWriters, waitTimeout)
	}
	if t.Failed() {
		return
	}
	if failed.Load() == 0 {
		t.Errorf("no append failed during the outage: the outage was not exercised")
	}

	// The log holds every acknowledged event, once, in order.
	total := 0
	for w := range outageWriters {
		got := mustRead(t, s, stream(w), domain.ReadStreamOptions{Limit: 10000})
		if diff := diffIDs(acked[w], ids(got)); diff != "" {
			t.Errorf("stream %s after the outage: %s", stream(w), diff)
		}
		total += len(acked[w])
	}
	// The subscriptions delivered them, once, in order.
	got := all.waitFor(t, total, subErrs)
	time.Sleep(100 * time.Millisecond) // let duplicates, if any, arrive
	got = all.snapshot()
	byStream := map[string][]domain.UUID{}
	for i, ev := range got {
		byStream[ev.Stream] = append(byStream[ev.Stream], ev.ID)
		if i > 0 && !got[i-1].Position.Less(ev.Position) {
			t.Errorf("SubscribeAll delivered position %v after %v", ev.Position, got[i-1].Position)
		}
	}
	for w := range outageWriters {
		if diff := diffIDs(acked[w], byStream[stream(w)]); diff != "" {
			t.Errorf("SubscribeAll, stream %s: %s", stream(w), diff)
		}
	}
	stream0.waitFor(t, len(acked[0]), subErrs)
	time.Sleep(50 * time.Millisecond)
	if diff := diffIDs(acked[0], ids(stream0.snapshot())); diff != "" {
		t.Errorf("SubscribeStream(%s): %s", stream(0), diff)
	}

	stopSubs()
	close(subErrs)
	for err := range subErrs {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("a subscription ended with %v, want context.Canceled", err)
		}
	}
	waitForGoroutines(t, baseline)
}

// waitForGoroutines waits until the process runs at most baseline
// goroutines, and fails listing them if it does not within
// goroutineSettle.
func waitForGoroutines(t *testing.T, baseline int) {
	t.Helper()
	deadline := time.Now().Add(goroutineSettle)
	for {
		n := runtime.NumGoroutine()
		if n <= baseline {
			return
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
			t.Errorf("%d goroutines %v after the test, %d before: something still runs or hangs:\n%s", n, goroutineSettle, baseline, b.String())
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// toRecorded gives appended events the shape ids reads.
func toRecorded(evs []domain.EventData) []domain.RecordedEvent {
	out := make([]domain.RecordedEvent, len(evs))
	for i, ev := range evs {
		out[i].ID = ev.ID
	}
	return out
}

// diffIDs describes how got differs from want, or returns "".
func diffIDs(want, got []domain.UUID) string {
	seen := map[domain.UUID]int{}
	for _, id := range got {
		seen[id]++
	}
	var missing, twice int
	for _, id := range want {
		switch seen[id] {
		case 0:
			missing++
		case 1:
		default:
			twice++
		}
	}
	if missing == 0 && twice == 0 && len(got) == len(want) {
		for i := range want {
			if want[i] != got[i] {
				return fmt.Sprintf("events out of order from %d on", i)
			}
		}
		return ""
	}
	return fmt.Sprintf("%d events, want %d: %d acknowledged ones missing, %d more than once", len(got), len(want), missing, twice)
}
