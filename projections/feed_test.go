package projections_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/projections"
)

// countingLog counts the subscriptions and reads that reach the log.
type countingLog struct {
	*fakeLog
	subscribes, reads atomic.Int64
}

func (l *countingLog) SubscribeAll(ctx context.Context, opts domain.SubscribeAllOptions, h domain.Handler) error {
	l.subscribes.Add(1)
	return l.fakeLog.SubscribeAll(ctx, opts, h)
}

func (l *countingLog) ReadAll(ctx context.Context, opts domain.ReadAllOptions) ([]domain.RecordedEvent, error) {
	l.reads.Add(1)
	return l.fakeLog.ReadAll(ctx, opts)
}

// runFeed runs a Feed over log until the test ends.
func runFeed(t *testing.T, log projections.Source, cfg projections.FeedConfig) *projections.Feed {
	t.Helper()
	f := projections.NewFeed(log, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Feed.Run: %v", err)
		}
	})
	<-f.Ready()
	return f
}

// collect subscribes to f after pos with prefix and gathers what it
// delivers until want events have come (or 10s pass); each batch is
// handled after delay.
type collector struct {
	mu     sync.Mutex
	got    []domain.RecordedEvent
	done   chan struct{}
	once   sync.Once
	stop   context.CancelFunc
	result chan error
}

func collect(f *projections.Feed, after domain.Position, prefix string, want int, delay time.Duration) *collector {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	c := &collector{done: make(chan struct{}), stop: cancel, result: make(chan error, 1)}
	go func() {
		c.result <- f.SubscribeAll(ctx, domain.SubscribeAllOptions{After: after, StreamPrefix: prefix}, func(_ context.Context, b []domain.RecordedEvent) error {
			time.Sleep(delay)
			c.mu.Lock()
			defer c.mu.Unlock()
			c.got = append(c.got, b...)
			if len(c.got) >= want {
				c.once.Do(func() { close(c.done) })
			}
			return nil
		})
	}()
	return c
}

func (c *collector) wait(t *testing.T) []domain.RecordedEvent {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
	}
	c.stop()
	<-c.result
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.got
}

// TestFeedDeliversEveryEventOnceToEachSubscriber: subscribers starting at
// the log's start (catching up from the store), in its middle and at the
// Feed's head, fast and slow, each get every event of their streams after
// their position exactly once and in order, while events keep coming; the
// log is subscribed to once.
func TestFeedDeliversEveryEventOnceToEachSubscriber(t *testing.T) {
	for _, overlap := range []bool{false, true} {
		t.Run(fmt.Sprintf("store redelivers=%v", overlap), func(t *testing.T) {
			fl := newFakeLog(7)
			fl.overlap = overlap
			log := &countingLog{fakeLog: fl}
			streams := func(n int) []string {
				out := make([]string, n)
				for i := range out {
					out[i] = fmt.Sprintf("room-%d", i%5+1)
					if i%7 == 0 {
						out[i] = "other-1" // not a stream the Feed reads
					}
				}
				return out
			}
			early := log.add(streams(100)...)
			f := runFeed(t, log, projections.FeedConfig{Batch: 10, Buffer: 50})
			var all []domain.RecordedEvent
			for _, ev := range early {
				if strings.HasPrefix(ev.Stream, "room-") {
					all = append(all, ev)
				}
			}
			const later = 400
			var lateRooms []domain.RecordedEvent
			want := func(after domain.Position, prefix string) []domain.RecordedEvent {
				var out []domain.RecordedEvent
				for _, ev := range append(all[:len(all):len(all)], lateRooms...) {
					if after.Less(ev.Position) && strings.HasPrefix(ev.Stream, prefix) {
						out = append(out, ev)
					}
				}
				return out
			}
			mid := early[50].Position
			head := early[len(early)-1].Position
			// How many events of their streams each will see in the end.
			n := func(after domain.Position, prefix string) int {
				c := 0
				for i, s := range append(streams(100), streams(later)...) {
					pos := domain.Position{Commit: uint64(i/3 + 1), Prepare: uint64(i + 1)}
					if strings.HasPrefix(s, prefix) && after.Less(pos) {
						c++
					}
				}
				return c
			}
			subs := []struct {
				name   string
				after  domain.Position
				prefix string
				delay  time.Duration
			}{
				{"from the start", domain.Start, "room-", 0},
				{"from the middle, slow", mid, "room-", 3 * time.Millisecond},
				{"from the head", head, "room-", 0},
				{"one room", domain.Start, "room-3", 0},
				{"not the Feed's streams", domain.Start, "other-", 0},
			}
			cs := make([]*collector, len(subs))
			for i, s := range subs {
				cs[i] = collect(f, s.after, s.prefix, n(s.after, s.prefix), s.delay)
			}
			for i := 0; i < later; i += 20 {
				for _, ev := range log.add(streams(later)[i : i+20]...) {
					if strings.HasPrefix(ev.Stream, "room-") {
						lateRooms = append(lateRooms, ev)
					}
				}
				time.Sleep(time.Millisecond)
			}
			for i, s := range subs {
				got := cs[i].wait(t)
				wantEvs := want(s.after, s.prefix)
				if s.prefix == "other-" {
					// Served by the store itself, at least once: drop the
					// fake's redeliveries.
					wantEvs = nil
					for _, ev := range append(early, fl.events[len(early):]...) {
						if strings.HasPrefix(ev.Stream, "other-") {
							wantEvs = append(wantEvs, ev)
						}
					}
					got = slices.CompactFunc(got, func(a, b domain.RecordedEvent) bool { return a.Position == b.Position })
				}
				if diff := cmp.Diff(positions(wantEvs), positions(got)); diff != "" {
					t.Errorf("%s: delivered positions (-want +got):\n%s", s.name, diff)
				}
			}
			// The Feed's own subscription, plus the one that asked for
			// streams the Feed does not read.
			if got := log.subscribes.Load(); got != 2 {
				t.Errorf("the log was subscribed to %d times, want 2", got)
			}
		})
	}
}

// TestFeedSubscriberErrorEndsOnlyItsSubscription: a handler's error ends
// that subscription with it; the others go on.
func TestFeedSubscriberErrorEndsOnlyItsSubscription(t *testing.T) {
	log := newFakeLog(10)
	f := runFeed(t, log, projections.FeedConfig{})
	boom := errors.New("boom")
	errc := make(chan error, 1)
	go func() {
		errc <- f.SubscribeAll(t.Context(), domain.SubscribeAllOptions{StreamPrefix: "room-"}, func(context.Context, []domain.RecordedEvent) error { return boom })
	}()
	c := collect(f, domain.Start, "room-", 6, 0)
	log.add("room-1", "room-2", "room-3")
	if err := <-errc; !errors.Is(err, boom) {
		t.Errorf("SubscribeAll = %v, want the handler's error", err)
	}
	log.add("room-1", "room-2", "room-3")
	if got := c.wait(t); len(got) != 6 {
		t.Errorf("the other subscriber got %d events, want 6", len(got))
	}
}

// restartingLog is a log whose server can crash and restart: restart drops
// its newest n events (commits the crash lost, whose positions new events
// reuse) and ends the subscription in progress with
// domain.ErrStoreRestarted, as the Postgres store does.
type restartingLog struct {
	*fakeLog
	mu      sync.Mutex
	crashed chan struct{}
}

func (l *restartingLog) restart(n int) {
	l.fakeLog.mu.Lock()
	l.events = l.events[:len(l.events)-n]
	l.fakeLog.mu.Unlock()
	l.mu.Lock()
	close(l.crashed)
	l.crashed = make(chan struct{})
	l.mu.Unlock()
}

func (l *restartingLog) SubscribeAll(ctx context.Context, opts domain.SubscribeAllOptions, h domain.Handler) error {
	l.mu.Lock()
	crashed := l.crashed
	l.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { // owned: ends with ctx, cancelled on return
		select {
		case <-crashed:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := l.fakeLog.SubscribeAll(ctx, opts, h)
	select {
	case <-crashed:
		return domain.ErrStoreRestarted
	default:
		return err
	}
}

// TestFeedEndsSubscriptionsWhenTheStoreRestarts: the store restarts and
// loses its newest event, whose position the next event reuses. Every
// subscription of the Feed ends with domain.ErrStoreRestarted, and one
// that starts again from the store's new head gets the events after it,
// the one at the reused position included.
func TestFeedEndsSubscriptionsWhenTheStoreRestarts(t *testing.T) {
	log := &restartingLog{fakeLog: newFakeLog(10), crashed: make(chan struct{})}
	log.add("room-1", "room-2")
	f := runFeed(t, log, projections.FeedConfig{})
	head, err := f.HeadPosition(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan domain.RecordedEvent, 10)
	errc := make(chan error, 1)
	go func() {
		errc <- f.SubscribeAll(t.Context(), domain.SubscribeAllOptions{After: head, StreamPrefix: "room-"}, func(_ context.Context, b []domain.RecordedEvent) error {
			for _, ev := range b {
				got <- ev
			}
			return nil
		})
	}()
	lost := log.add("room-3")[0]
	if ev := <-got; ev.Stream != "room-3" {
		t.Fatalf("got %s, want room-3's event", ev.Stream)
	}
	log.restart(1)
	select {
	case err := <-errc:
		if !errors.Is(err, domain.ErrStoreRestarted) {
			t.Fatalf("SubscribeAll after the restart = %v, want domain.ErrStoreRestarted", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the subscription did not end when the store restarted")
	}

	head, err = f.HeadPosition(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	c := collect(f, head, "room-", 2, 0)
	again := log.add("room-4", "room-5")
	if again[0].Position != lost.Position {
		t.Fatalf("the fake log did not reuse the lost position: %v, want %v", again[0].Position, lost.Position)
	}
	if diff := cmp.Diff(again, c.wait(t)); diff != "" {
		t.Errorf("events after the restart (-want +got):\n%s", diff)
	}
}

// refusingLog's subscriptions fail for good.
type refusingLog struct{ *fakeLog }

func (refusingLog) SubscribeAll(context.Context, domain.SubscribeAllOptions, domain.Handler) error {
	return domain.Permanent(errors.New("the server refuses this subscription"))
}

// TestFeedStopsOnAPermanentFailure: a failure no retry can cure ends Run
// and every subscription with it, instead of being retried for ever.
func TestFeedStopsOnAPermanentFailure(t *testing.T) {
	f := projections.NewFeed(refusingLog{newFakeLog(10)}, projections.FeedConfig{})
	errc := make(chan error, 1)
	go func() {
		errc <- f.SubscribeAll(t.Context(), domain.SubscribeAllOptions{StreamPrefix: "room-"}, func(context.Context, []domain.RecordedEvent) error { return nil })
	}()
	if err := f.Run(t.Context()); !errors.Is(err, domain.ErrPermanent) {
		t.Fatalf("Run = %v, want the permanent failure", err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, domain.ErrPermanent) {
			t.Errorf("SubscribeAll = %v, want the permanent failure", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("the subscription did not end with the Feed")
	}
}

// TestFeedHead: the Feed's head is the store's when it starts, follows
// the events it reads, and is not offered before Run has found it or
// after a permanent failure.
func TestFeedHead(t *testing.T) {
	log := newFakeLog(10)
	log.add("room-1", "room-2")
	f := projections.NewFeed(log, projections.FeedConfig{})
	if _, ok := f.Head(); ok {
		t.Fatal("Head is offered before Run has started")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-f.Ready()
	want, err := log.HeadPosition(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := f.Head(); !ok || got != want {
		t.Fatalf("Head at start = %v, %v; want the store's %v, true", got, ok, want)
	}
	c := collect(f, want, "room-", 2, 0)
	added := log.add("other-1", "room-3", "room-4")
	c.wait(t) // the Feed has read them: its subscriber has
	if got, ok := f.Head(); !ok || got != added[2].Position {
		t.Errorf("Head after three events = %v, %v; want the last room event's %v", got, ok, added[2].Position)
	}

	failed := projections.NewFeed(refusingLog{newFakeLog(10)}, projections.FeedConfig{})
	if err := failed.Run(t.Context()); !errors.Is(err, domain.ErrPermanent) {
		t.Fatalf("Run = %v, want the permanent failure", err)
	}
	if _, ok := failed.Head(); ok {
		t.Error("Head is offered by a Feed that stopped on a permanent failure")
	}
}
