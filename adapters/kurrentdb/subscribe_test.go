package kurrentdb

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/parleychat/parley/domain"
)

// fakeSub is a server subscription that replays a script and then blocks
// until closed, as a live subscription does.
type fakeSub struct {
	script chan *esdb.SubscriptionEvent
	closed chan struct{}
	once   sync.Once
}

func newFakeSub(events ...*esdb.SubscriptionEvent) *fakeSub {
	f := &fakeSub{script: make(chan *esdb.SubscriptionEvent, len(events)), closed: make(chan struct{})}
	for _, ev := range events {
		f.script <- ev
	}
	return f
}

func (f *fakeSub) Recv() *esdb.SubscriptionEvent {
	select {
	case <-f.closed:
		return dropped(errors.New("subscription has been dropped"))
	default:
	}
	select {
	case ev := <-f.script:
		return ev
	case <-f.closed:
		return dropped(errors.New("subscription has been dropped"))
	}
}

func (f *fakeSub) Close() error {
	f.once.Do(func() { close(f.closed) })
	return nil
}

func (f *fakeSub) isClosed() bool {
	select {
	case <-f.closed:
		return true
	default:
		return false
	}
}

func dropped(err error) *esdb.SubscriptionEvent {
	return &esdb.SubscriptionEvent{SubscriptionDropped: &esdb.SubscriptionDropped{Error: err}}
}

// appeared builds a received event of stream at version v and a position
// derived from n.
func appeared(stream string, typ string, v uint64, n uint64) *esdb.SubscriptionEvent {
	return &esdb.SubscriptionEvent{EventAppeared: &esdb.ResolvedEvent{Event: &esdb.RecordedEvent{
		EventID:     uuid.UUID{15: byte(n)},
		EventType:   typ,
		StreamID:    stream,
		EventNumber: v,
		Position:    esdb.Position{Commit: 100 * n, Prepare: 100 * n},
		Data:        []byte(`{}`),
	}}}
}

// opened records one call of the fake subscribe function.
type opened struct {
	at   time.Duration // since the test started
	from string
}

// fakeClient hands out scripted subscriptions in turn: a *fakeSub, or an
// error for a failed subscribe call. Past the script it blocks like an
// idle live subscription.
type fakeClient struct {
	start time.Time
	mu    sync.Mutex
	steps []any
	calls []opened
	subs  []*fakeSub
	opts  []esdb.SubscribeToAllOptions
}

func (c *fakeClient) next(from string) (subscription, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, opened{at: time.Since(c.start), from: from})
	var step any = newFakeSub()
	if len(c.steps) > 0 {
		step, c.steps = c.steps[0], c.steps[1:]
	}
	if err, ok := step.(error); ok {
		return nil, err
	}
	sub := step.(*fakeSub)
	c.subs = append(c.subs, sub)
	return sub, nil
}

func allFrom(p esdb.AllPosition) string {
	switch p := p.(type) {
	case esdb.Start:
		return "start"
	case esdb.Position:
		return fmt.Sprintf("%d/%d", p.Commit, p.Prepare)
	}
	return fmt.Sprintf("%T", p)
}

func streamFrom(p esdb.StreamPosition) string {
	switch p := p.(type) {
	case esdb.Start:
		return "start"
	case esdb.StreamRevision:
		return fmt.Sprint(p.Value)
	}
	return fmt.Sprintf("%T", p)
}

// fakeStore returns a store whose subscribe calls go to c.
func fakeStore(c *fakeClient) *Store {
	s, _ := newStore(nil, Options{})
	c.start = time.Now()
	s.subscribeToAll = func(ctx context.Context, opts esdb.SubscribeToAllOptions) (subscription, error) {
		c.mu.Lock()
		c.opts = append(c.opts, opts)
		c.mu.Unlock()
		return c.next(allFrom(opts.From))
	}
	s.subscribeToStream = func(ctx context.Context, stream string, opts esdb.SubscribeToStreamOptions) (subscription, error) {
		return c.next(stream + "@" + streamFrom(opts.From))
	}
	return s
}

// recorder is a handler that keeps what it receives.
type recorder struct {
	gate    chan struct{} // if set, the first call waits for it to close
	mu      sync.Mutex
	batches [][]domain.RecordedEvent
	fail    error
}

func newRecorder() *recorder { return &recorder{} }

func (r *recorder) handle(_ context.Context, batch []domain.RecordedEvent) error {
	r.mu.Lock()
	first := len(r.batches) == 0
	r.batches = append(r.batches, batch)
	r.mu.Unlock()
	if first && r.gate != nil {
		<-r.gate
	}
	return r.fail
}

// versions returns stream@version of every delivered event, checking that
// no batch is empty or over maxBatch.
func (r *recorder) versions(t *testing.T) []string {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, b := range r.batches {
		if len(b) == 0 || len(b) > maxBatch {
			t.Errorf("batch of %d events", len(b))
		}
		for _, ev := range b {
			out = append(out, fmt.Sprintf("%s@%d", ev.Stream, ev.Version))
		}
	}
	return out
}

// run starts sub in a goroutine the test owns and returns its result
// channel and the cancel func.
func run(t *testing.T, sub func(ctx context.Context) error) (<-chan error, context.CancelFunc) {
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- sub(ctx) }()
	t.Cleanup(cancel)
	return errc, cancel
}

func TestSubscribeAllResubscribesAfterDrops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		first := newFakeSub(
			appeared("p-room-1", "MessagePosted", 0, 11),
			appeared("p-room-2", "MessagePosted", 0, 12),
			dropped(status.Error(codes.Unavailable, "stream reset")),
		)
		third := newFakeSub(
			appeared("p-room-2", "MessagePosted", 0, 12), // at the checkpoint: not again
			appeared("p-room-1", "MessagePosted", 1, 13),
		)
		c := &fakeClient{steps: []any{first, status.Error(codes.Unavailable, "connection refused"), third}}
		s := fakeStore(c)
		r := newRecorder()
		errc, cancel := run(t, func(ctx context.Context) error {
			return s.SubscribeAll(ctx, domain.SubscribeAllOptions{After: domain.Position{Commit: 1000, Prepare: 1000}, StreamPrefix: "p-"}, r.handle)
		})
		time.Sleep(time.Hour) // every wait and retry runs its course
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("SubscribeAll after cancel = %v, want context.Canceled", err)
		}
		if diff := cmp.Diff([]string{"p-room-1@0", "p-room-2@0", "p-room-1@1"}, r.versions(t)); diff != "" {
			t.Errorf("delivered mismatch (-want +got):\n%s", diff)
		}
		// 100 ms after the drop that delivered events, then 200 ms after the
		// failed attempt; each from the last delivered position.
		want := []opened{{0, "1000/1000"}, {100 * time.Millisecond, "1200/1200"}, {300 * time.Millisecond, "1200/1200"}}
		if diff := cmp.Diff(want, c.calls, cmp.AllowUnexported(opened{})); diff != "" {
			t.Errorf("subscribe calls mismatch (-want +got):\n%s", diff)
		}
		for i, o := range c.opts {
			if f := o.Filter; f == nil || f.Type != esdb.StreamFilterType || fmt.Sprint(f.Prefixes) != "[p-]" || f.Regex != "" {
				t.Errorf("subscribe call %d filter = %+v, want the stream prefix p-", i, f)
			}
		}
		for i, sub := range c.subs {
			if !sub.isClosed() {
				t.Errorf("subscription %d was not closed", i)
			}
		}
	})
}

func TestSubscribeAllBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		down := status.Error(codes.Unavailable, "connection refused")
		steps := []any{down, down, down, down, down, down, down, down,
			newFakeSub(appeared("room-1", "MessagePosted", 0, 1), dropped(errors.New("reset"))),
			down,
		}
		c := &fakeClient{steps: steps}
		s := fakeStore(c)
		r := newRecorder()
		errc, cancel := run(t, func(ctx context.Context) error {
			return s.SubscribeAll(ctx, domain.SubscribeAllOptions{}, r.handle)
		})
		time.Sleep(time.Minute)
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("SubscribeAll after cancel = %v, want context.Canceled", err)
		}
		var gaps []time.Duration
		for i := 1; i < len(c.calls); i++ {
			gaps = append(gaps, c.calls[i].at-c.calls[i-1].at)
		}
		ms := time.Millisecond
		// Doubling from 100 ms, capped at 5 s; back to 100 ms once a
		// subscription delivered.
		want := []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 3200 * ms, 5000 * ms, 5000 * ms, 100 * ms, 200 * ms}
		if diff := cmp.Diff(want, gaps); diff != "" {
			t.Errorf("waits between subscribe calls mismatch (-want +got):\n%s", diff)
		}
		if got := c.opts[0].Filter; got == nil || got.Regex != systemStreams || len(got.Prefixes) != 0 {
			t.Errorf("filter without a prefix = %+v, want the system-stream regex", got)
		}
		if c.calls[0].from != "start" || c.calls[9].from != "100/100" {
			t.Errorf("subscribed from %q then (after the delivery) %q, want start and 100/100", c.calls[0].from, c.calls[9].from)
		}
	})
}

func TestSubscribeAllSkipsSystemAndOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sub := newFakeSub(
			appeared("p-room-1", "MessagePosted", 3, 5), // at After
			appeared("p-room-1", "MessagePosted", 2, 4), // before After
			appeared("$stats-node", "$statsCollected", 0, 6),
			appeared("p-room-1", "$streamDeleted", 9, 7),
			appeared("x-p-room", "MessagePosted", 0, 8), // another prefix
			&esdb.SubscriptionEvent{CheckPointReached: &esdb.Position{Commit: 850, Prepare: 850}},
			&esdb.SubscriptionEvent{CaughtUp: &esdb.Subscription{}},
			appeared("p-room-1", "MessagePosted", 4, 9),
		)
		c := &fakeClient{steps: []any{sub}}
		s := fakeStore(c)
		r := newRecorder()
		errc, cancel := run(t, func(ctx context.Context) error {
			return s.SubscribeAll(ctx, domain.SubscribeAllOptions{After: domain.Position{Commit: 500, Prepare: 500}, StreamPrefix: "p-"}, r.handle)
		})
		time.Sleep(time.Hour) // every wait and retry runs its course
		cancel()
		<-errc
		if diff := cmp.Diff([]string{"p-room-1@4"}, r.versions(t)); diff != "" {
			t.Errorf("delivered mismatch (-want +got):\n%s", diff)
		}
	})
}

func TestSubscribeBatchesAvailableEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// More events than the reader's queue holds and the handler's
		// first batch can take, so that while the handler is held the
		// queue fills up whatever the first batch took.
		var script []*esdb.SubscriptionEvent
		var want []string
		for i := range 2*maxBatch + 1 {
			script = append(script, appeared("room-1", "MessagePosted", uint64(i), uint64(i+1)))
			want = append(want, fmt.Sprintf("room-1@%d", i))
		}
		c := &fakeClient{steps: []any{newFakeSub(script...)}}
		s := fakeStore(c)
		r := newRecorder()
		r.gate = make(chan struct{})
		errc, cancel := run(t, func(ctx context.Context) error {
			return s.SubscribeStream(ctx, "room-1", domain.NoVersion, r.handle)
		})
		// The handler holds its first batch until the reader has queued
		// all it can; those queued events then go out as one batch.
		synctest.Wait()
		close(r.gate)
		time.Sleep(time.Hour)
		cancel()
		<-errc
		if diff := cmp.Diff(want, r.versions(t)); diff != "" {
			t.Errorf("delivered mismatch (-want +got):\n%s", diff)
		}
		if n := len(r.batches); n < 3 {
			t.Fatalf("%d events came in %d batches, want at least 3 of at most %d", len(want), n, maxBatch)
		}
		// The events received while the handler was busy go together, in
		// a batch of the size the store reports (a projection runner's
		// FullBatch).
		if got, full := len(r.batches[1]), s.SubscriptionBatch(); got != full {
			t.Errorf("the batch after a held handler holds %d events; SubscriptionBatch says %d", got, full)
		}
	})
}

func TestSubscribeStreamResumesAfterVersion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := &fakeClient{steps: []any{
			newFakeSub(
				appeared("room-1", "MessagePosted", 5, 1), // at after: not again
				appeared("room-1", "MessagePosted", 6, 2),
				dropped(errors.New("reset")),
			),
			newFakeSub(
				appeared("room-1", "MessagePosted", 6, 2),
				appeared("room-1", "MessagePosted", 7, 3),
			),
		}}
		s := fakeStore(c)
		r := newRecorder()
		errc, cancel := run(t, func(ctx context.Context) error {
			return s.SubscribeStream(ctx, "room-1", 5, r.handle)
		})
		time.Sleep(time.Hour) // every wait and retry runs its course
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("SubscribeStream after cancel = %v, want context.Canceled", err)
		}
		if diff := cmp.Diff([]string{"room-1@6", "room-1@7"}, r.versions(t)); diff != "" {
			t.Errorf("delivered mismatch (-want +got):\n%s", diff)
		}
		var froms []string
		for _, o := range c.calls {
			froms = append(froms, o.from)
		}
		if diff := cmp.Diff([]string{"room-1@5", "room-1@6"}, froms); diff != "" {
			t.Errorf("subscribed from mismatch (-want +got):\n%s", diff)
		}
	})
}

func TestSubscribeStreamFromStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := &fakeClient{}
		s := fakeStore(c)
		errc, cancel := run(t, func(ctx context.Context) error {
			return s.SubscribeStream(ctx, "room-1", domain.NoVersion, newRecorder().handle)
		})
		time.Sleep(time.Hour) // every wait and retry runs its course
		cancel()
		<-errc
		if len(c.calls) != 1 || c.calls[0].from != "room-1@start" {
			t.Errorf("subscribe calls = %+v, want one from the start of room-1", c.calls)
		}
	})
}

func TestSubscribeHandlerErrorEndsSubscription(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := &fakeClient{steps: []any{newFakeSub(appeared("room-1", "MessagePosted", 0, 1), appeared("room-1", "MessagePosted", 1, 2))}}
		s := fakeStore(c)
		r := newRecorder()
		boom := errors.New("boom")
		r.fail = boom
		err := s.SubscribeAll(t.Context(), domain.SubscribeAllOptions{}, r.handle)
		if err != boom {
			t.Errorf("SubscribeAll with a failing handler = %v, want the handler's error itself", err)
		}
		if len(c.calls) != 1 || !c.subs[0].isClosed() {
			t.Errorf("after a handler error: %d subscribe calls, closed %v; want 1, closed", len(c.calls), c.subs[0].isClosed())
		}
	})
}

func TestSubscribeGivesUpOnRefusedCredentials(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		denied := status.Error(codes.PermissionDenied, "access denied")
		c := &fakeClient{steps: []any{denied}}
		s := fakeStore(c)
		err := s.SubscribeStream(t.Context(), "room-1", domain.NoVersion, newRecorder().handle)
		if !errors.Is(err, denied) || len(c.calls) != 1 {
			t.Errorf("SubscribeStream with refused credentials = %v after %d calls, want the error after 1", err, len(c.calls))
		}
	})
}

func TestSubscribeInvalidStream(t *testing.T) {
	s := mustNewStore(t, Options{})
	err := s.SubscribeStream(t.Context(), "$all", domain.NoVersion, newRecorder().handle)
	if !errors.Is(err, domain.ErrInvalidEvent) {
		t.Errorf("SubscribeStream($all) = %v, want an invalid stream name", err)
	}
}

func TestSubscribeCancelledWhileWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// A drop whose error is the cancellation itself.
		c := &fakeClient{steps: []any{newFakeSub()}}
		s := fakeStore(c)
		errc, cancel := run(t, func(ctx context.Context) error {
			return s.SubscribeAll(ctx, domain.SubscribeAllOptions{}, newRecorder().handle)
		})
		time.Sleep(time.Hour) // every wait and retry runs its course
		cancel()
		if err := <-errc; err != context.Canceled {
			t.Errorf("SubscribeAll = %v, want context.Canceled", err)
		}
		if !c.subs[0].isClosed() {
			t.Errorf("the subscription was not closed")
		}
	})
}
