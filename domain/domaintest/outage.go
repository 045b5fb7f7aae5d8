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
	// OutageSlack is how far past its deadline a call may return, beyond
	// any stall of the whole process (see stallProbe): scheduling noise,
	// not a store's retry loop.
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

	probe := startStallProbe()
	defer probe.stop()
	var (
		back     atomic.Int64 // when the server came back (Unix ns)
		firstOK  atomic.Int64 // when an append first succeeded after that
		worst    atomic.Int64 // the longest append, ns
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
					for w := worst.Load(); int64(took) > w && !worst.CompareAndSwap(w, int64(took)); w = worst.Load() {
					}
					if stall := probe.maxGap(began, began.Add(took)); took > OutageCallTimeout+OutageSlack+stall {
						t.Errorf("writer %d: an append took %v, past its %v deadline while the process stalled at most %v (err %v)", w, took, OutageCallTimeout, stall, err)
					}
					if err == nil {
						if b := back.Load(); b != 0 {
							firstOK.CompareAndSwap(0, time.Now().UnixNano())
						}
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
	back.Store(time.Now().UnixNano())
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
	t.Logf("outage: %d appends failed while the server was down; the first append after it came back succeeded %v later; the longest append took %v",
		failed.Load(), time.Duration(firstOK.Load()-back.Load()).Round(time.Millisecond), time.Duration(worst.Load()).Round(time.Millisecond))

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
	probe.stop()
	waitForGoroutines(t, baseline)
}

// stallProbe ticks every 20 ms, so that a call's lateness can be told
// from a stall of the whole process (a loaded machine, the race
// detector, a collection): the longest gap between ticks while the call
// ran is time no goroutine of the process could count on.
type stallProbe struct {
	mu    sync.Mutex
	ticks []time.Time
	done  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
}

func startStallProbe() *stallProbe {
	p := &stallProbe{done: make(chan struct{}), ticks: []time.Time{time.Now()}}
	p.wg.Go(func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.done:
				return
			case now := <-t.C:
				p.mu.Lock()
				p.ticks = append(p.ticks, now)
				p.mu.Unlock()
			}
		}
	})
	return p
}

// stop ends the probe and waits for it; it is idempotent.
func (p *stallProbe) stop() {
	p.once.Do(func() { close(p.done) })
	p.wg.Wait()
}

// maxGap returns the longest time between two ticks, less the tick
// period, that overlaps [from, to] (counting to itself as a tick when
// none came after it).
func (p *stallProbe) maxGap(from, to time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	var worst time.Duration
	for i := 1; i <= len(p.ticks); i++ {
		prev, next := p.ticks[i-1], to
		if i < len(p.ticks) {
			next = p.ticks[i]
		}
		if next.Before(from) || prev.After(to) {
			continue
		}
		worst = max(worst, next.Sub(prev)-20*time.Millisecond)
	}
	return worst
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
