package projections_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/projections"
)

// fakeLog is a hand-written in-memory log: SubscribeAll hands out batches
// of at most batch events, then waits for appends.
type fakeLog struct {
	mu      sync.Mutex
	events  []domain.RecordedEvent
	changed chan struct{}
	batch   int
	// overlap redelivers the last event of each batch at the start of the
	// next, as an at-least-once subscription may.
	overlap bool
	// subErrs are returned by successive SubscribeAll calls before they
	// start delivering.
	subErrs []error
	// afters records the After of each SubscribeAll.
	afters []domain.Position
}

func newFakeLog(batch int) *fakeLog { return &fakeLog{batch: batch, changed: make(chan struct{})} }

// add appends events of the given streams (one each) and returns them.
func (l *fakeLog) add(streams ...string) []domain.RecordedEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []domain.RecordedEvent
	for _, s := range streams {
		n := len(l.events)
		ev := domain.RecordedEvent{
			Type: "Something", Stream: s, Version: int64(n),
			Position:   domain.Position{Commit: uint64(n/3 + 1), Prepare: uint64(n + 1)},
			RecordedAt: time.Now(),
		}
		l.events = append(l.events, ev)
		out = append(out, ev)
	}
	close(l.changed)
	l.changed = make(chan struct{})
	return out
}

func (l *fakeLog) after(after domain.Position, prefix string, limit int) ([]domain.RecordedEvent, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []domain.RecordedEvent
	for _, ev := range l.events {
		if after.Less(ev.Position) && strings.HasPrefix(ev.Stream, prefix) && len(out) < limit {
			out = append(out, ev)
		}
	}
	return out, l.changed
}

func (l *fakeLog) SubscribeAll(ctx context.Context, opts domain.SubscribeAllOptions, h domain.Handler) error {
	l.mu.Lock()
	l.afters = append(l.afters, opts.After)
	var err error
	if len(l.subErrs) > 0 {
		err, l.subErrs = l.subErrs[0], l.subErrs[1:]
	}
	l.mu.Unlock()
	if err != nil {
		return err
	}
	after := opts.After
	var prev *domain.RecordedEvent
	for {
		batch, changed := l.after(after, opts.StreamPrefix, l.batch)
		if len(batch) == 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-changed:
				continue
			}
		}
		after = batch[len(batch)-1].Position
		if l.overlap && prev != nil {
			batch = append([]domain.RecordedEvent{*prev}, batch...)
		}
		prev = &batch[len(batch)-1]
		if err := h(ctx, batch); err != nil {
			return err
		}
	}
}

func (l *fakeLog) ReadAll(_ context.Context, opts domain.ReadAllOptions) ([]domain.RecordedEvent, error) {
	evs, _ := l.after(opts.After, opts.StreamPrefix, domain.ReadLimit(opts.Limit))
	return evs, nil
}

func (l *fakeLog) HeadPosition(context.Context) (domain.Position, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.events) == 0 {
		return domain.Start, nil
	}
	return l.events[len(l.events)-1].Position, nil
}

// fakeProjection is a hand-written projection keeping what it applied.
type fakeProjection struct {
	mu       sync.Mutex
	cp       domain.Position
	applied  []domain.RecordedEvent
	fails    []error // returned by successive Apply calls
	calls    []time.Time
	recorded []string
}

func (p *fakeProjection) Name() string { return "fake" }

func (p *fakeProjection) Checkpoint(context.Context) (domain.Position, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cp, nil
}

func (p *fakeProjection) Apply(_ context.Context, batch []domain.RecordedEvent) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, time.Now())
	if len(p.fails) > 0 {
		err := p.fails[0]
		p.fails = p.fails[1:]
		return err
	}
	p.applied = append(p.applied, batch...)
	p.cp = batch[len(batch)-1].Position
	return nil
}

func (p *fakeProjection) RecordError(_ context.Context, msg string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.recorded = append(p.recorded, msg)
	return nil
}

func (p *fakeProjection) snapshot() ([]domain.RecordedEvent, []time.Time, []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]domain.RecordedEvent(nil), p.applied...), append([]time.Time(nil), p.calls...), append([]string(nil), p.recorded...)
}

// start runs r until the test ends and returns a function that stops it
// and returns Run's result.
func start(t *testing.T, r *projections.Runner) func() error {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var (
		once sync.Once
		err  error
	)
	stop := func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

func positions(evs []domain.RecordedEvent) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, ev.Stream+"@"+ev.Position.String())
	}
	return out
}

func TestRunnerAppliesRoomEventsInOrder(t *testing.T) {
	for _, tc := range []struct {
		name    string
		batch   int
		overlap bool
	}{
		{"one at a time", 1, false},
		{"batches of three", 3, false},
		{"redelivered overlaps", 2, true},
		{"one batch", 1000, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := newFakeLog(tc.batch)
			log.overlap = tc.overlap
			var want []domain.RecordedEvent
			want = append(want, log.add("room-1", "room-2", "user-1", "room-1")...)
			p := &fakeProjection{}
			r := &projections.Runner{Store: log, Projection: p}
			stop := start(t, r)
			// Appended while running: caught up, then live.
			want = append(want, log.add("room-3", "room-1", "user-2")...)
			head, _ := log.HeadPosition(t.Context())

			// The head is an event of another stream: it is reached once
			// the projection passes it.
			if err := r.WaitFor(t.Context(), head); err != nil {
				t.Fatal(err)
			}
			got, _, _ := p.snapshot()
			var rooms []domain.RecordedEvent
			for _, ev := range want {
				if strings.HasPrefix(ev.Stream, "room-") {
					rooms = append(rooms, ev)
				}
			}
			if diff := cmp.Diff(positions(got), positions(rooms)); diff != "" {
				t.Errorf("applied (-got +want):\n%s", diff)
			}
			st, err := r.Status(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			last := rooms[len(rooms)-1]
			wantSt := projections.Status{Name: "fake", State: projections.StateRunning, Checkpoint: last.Position,
				Head: head, CaughtUp: true, Events: uint64(len(rooms)), LastEventAt: last.RecordedAt}
			if diff := cmp.Diff(st, wantSt); diff != "" {
				t.Errorf("status (-got +want):\n%s", diff)
			}
			if st, err := r.StatusAt(t.Context(), head); err != nil || !cmp.Equal(st, wantSt) {
				t.Errorf("StatusAt(head) = %+v, %v; want Status's %+v", st, err, wantSt)
			}
			prog := wantSt
			prog.Head, prog.CaughtUp = domain.Position{}, false
			if diff := cmp.Diff(r.Progress(), prog); diff != "" {
				t.Errorf("progress, which reads nothing (-got +want):\n%s", diff)
			}
			if err := stop(); err != nil {
				t.Errorf("Run after its context ended = %v, want nil", err)
			}
			if st, _ := r.Status(t.Context()); st.State != projections.StateIdle {
				t.Errorf("state after Run = %q, want %q", st.State, projections.StateIdle)
			}
		})
	}
}

func TestRunnerResumesAfterItsCheckpoint(t *testing.T) {
	log := newFakeLog(10)
	evs := log.add("room-1", "room-1", "room-2", "room-1")
	p := &fakeProjection{cp: evs[1].Position}
	r := &projections.Runner{Store: log, Projection: p}
	start(t, r)
	if err := r.WaitFor(t.Context(), evs[3].Position); err != nil {
		t.Fatal(err)
	}
	got, _, _ := p.snapshot()
	if diff := cmp.Diff(positions(got), positions(evs[2:])); diff != "" {
		t.Errorf("applied (-got +want):\n%s", diff)
	}
	log.mu.Lock()
	afters := log.afters
	log.mu.Unlock()
	if diff := cmp.Diff(afters, []domain.Position{evs[1].Position}); diff != "" {
		t.Errorf("subscribed after (-got +want):\n%s", diff)
	}
}

func TestRunnerRetriesFailuresWithBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := newFakeLog(10)
		evs := log.add("room-1", "room-2")
		p := &fakeProjection{fails: []error{errors.New("connection reset"), errors.New("connection refused"), errors.New("timeout")}}
		r := &projections.Runner{Store: log, Projection: p, MinBackoff: time.Second, MaxBackoff: 3 * time.Second}
		start(t, r)

		synctest.Wait() // the first attempt failed
		st, err := r.Status(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if st.State != projections.StateRetrying || !strings.Contains(st.LastError, "connection reset") || st.CaughtUp {
			t.Errorf("status while retrying = %+v, want retrying after connection reset, not caught up", st)
		}
		if err := r.WaitFor(t.Context(), evs[1].Position); err != nil {
			t.Fatal(err)
		}
		got, calls, recorded := p.snapshot()
		if diff := cmp.Diff(positions(got), positions(evs)); diff != "" {
			t.Errorf("applied (-got +want):\n%s", diff)
		}
		var gaps []time.Duration
		for i := 1; i < len(calls); i++ {
			gaps = append(gaps, calls[i].Sub(calls[i-1]))
		}
		if diff := cmp.Diff(gaps, []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}); diff != "" {
			t.Errorf("waits between attempts (-got +want):\n%s", diff)
		}
		if len(recorded) != 3 || !strings.Contains(recorded[2], "timeout") {
			t.Errorf("recorded errors = %q, want the three failures", recorded)
		}
		st, err = r.Status(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if st.State != projections.StateRunning || !strings.Contains(st.LastError, "timeout") || !st.CaughtUp {
			t.Errorf("status after recovering = %+v, want running and caught up, the last error kept", st)
		}
	})
}

func TestRunnerResubscribesAfterTheSubscriptionFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := newFakeLog(10)
		log.subErrs = []error{errors.New("server unavailable")}
		evs := log.add("room-1", "room-2")
		p := &fakeProjection{}
		r := &projections.Runner{Store: log, Projection: p}
		start(t, r)
		if err := r.WaitFor(t.Context(), evs[1].Position); err != nil {
			t.Fatal(err)
		}
		got, _, recorded := p.snapshot()
		if diff := cmp.Diff(positions(got), positions(evs)); diff != "" {
			t.Errorf("applied (-got +want):\n%s", diff)
		}
		if len(recorded) != 1 || !strings.Contains(recorded[0], "server unavailable") {
			t.Errorf("recorded errors = %q, want the subscription's", recorded)
		}
	})
}

func TestRunnerStopsOnAnEventItCannotApply(t *testing.T) {
	log := newFakeLog(10)
	evs := log.add("room-1", "room-7")
	bad := projections.NewEventError(evs[1], errors.New("json: cannot unmarshal number"))
	p := &fakeProjection{fails: []error{fmt.Errorf("apply: %w", bad)}}
	r := &projections.Runner{Store: log, Projection: p}

	err := r.Run(t.Context())
	var ee *projections.EventError
	if !errors.As(err, &ee) || ee.Stream != "room-7" || ee.Position != evs[1].Position {
		t.Fatalf("Run = %v, want the EventError of room-7", err)
	}
	for _, want := range []string{"fake", "room-7@1", evs[1].Position.String(), "cannot unmarshal"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Run's error %q does not mention %q", err, want)
		}
	}
	got, _, recorded := p.snapshot()
	if len(got) != 0 {
		t.Errorf("applied %v, want nothing", positions(got))
	}
	if len(recorded) != 1 || !strings.Contains(recorded[0], "room-7@1") {
		t.Errorf("recorded errors = %q, want the event error", recorded)
	}
	st, serr := r.Status(t.Context())
	if serr != nil {
		t.Fatal(serr)
	}
	if st.State != projections.StateFailed || !strings.Contains(st.LastError, "room-7@1") || st.Checkpoint != domain.Start || st.CaughtUp {
		t.Errorf("status = %+v, want failed at the start with the event error", st)
	}
	if werr := r.WaitFor(t.Context(), evs[1].Position); !errors.As(werr, &ee) {
		t.Errorf("WaitFor after the failure = %v, want the EventError", werr)
	}
}

func TestRunnerRunsOnceAtATime(t *testing.T) {
	log := newFakeLog(10)
	r := &projections.Runner{Store: log, Projection: &fakeProjection{}}
	start(t, r)
	// Wait until the first Run holds the runner.
	if err := r.WaitFor(t.Context(), domain.Start); err != nil {
		t.Fatal(err)
	}
	if err := r.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("a second Run = %v, want already running", err)
	}
}

func TestWaitForEndsWithItsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := newFakeLog(10)
		r := &projections.Runner{Store: log, Projection: &fakeProjection{}}
		start(t, r)
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		// Not yet appended: the runner cannot reach it.
		err := r.WaitFor(ctx, domain.Position{Commit: 9, Prepare: 9})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("WaitFor = %v, want the deadline", err)
		}
	})
}

func TestStatusBeforeRunReadsTheCheckpoint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := newFakeLog(10)
		evs := log.add("room-1", "user-1")
		time.Sleep(time.Minute)
		evs = append(evs, log.add("room-2", "room-3")...)
		r := &projections.Runner{Store: log, Projection: &fakeProjection{cp: evs[0].Position}}
		time.Sleep(time.Hour)
		st, err := r.Status(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		want := projections.Status{Name: "fake", State: projections.StateIdle, Checkpoint: evs[0].Position, Head: evs[3].Position,
			Lag: time.Hour}
		if diff := cmp.Diff(st, want); diff != "" {
			t.Errorf("status (-got +want):\n%s", diff)
		}
	})
}

// TestRunnerIntervalGathersLiveEvents: with an Interval, a runner that is
// catching up applies full batches back to back, and once live applies at
// most once per Interval, the events that came meanwhile together.
func TestRunnerIntervalGathersLiveEvents(t *testing.T) {
	const interval = time.Second
	log := newFakeLog(4)
	for range 12 { // three full batches
		log.add("room-1")
	}
	p := &fakeProjection{}
	r := &projections.Runner{Store: log, Projection: p, Interval: interval, FullBatch: 4}
	start(t, r)
	waitApplied := func(n int) []time.Time {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			applied, calls, _ := p.snapshot()
			if len(applied) >= n {
				return calls
			}
			if time.Now().After(deadline) {
				t.Fatalf("applied %d events, want %d", len(applied), n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	calls := waitApplied(12)
	if len(calls) != 3 || calls[2].Sub(calls[0]) >= interval {
		t.Fatalf("catch-up: %d applies over %s, want 3 back to back", len(calls), calls[len(calls)-1].Sub(calls[0]))
	}
	log.add("room-1") // live: applied at once, the last batch was full
	waitApplied(13)
	for range 3 {
		log.add("room-1")
	}
	calls = waitApplied(16)
	if len(calls) != 5 {
		t.Fatalf("%d applies for 16 events, want the last 3 events in one", len(calls))
	}
	if gap := calls[4].Sub(calls[3]); gap < interval*9/10 {
		t.Errorf("live applies %s apart, want at least %s", gap, interval)
	}
}

// TestRunnerStopsWhenTheLogCannotBeFollowed: a store that cannot follow
// the log from the checkpoint, for good (a checkpoint from another store,
// say), stops the runner with its error, recorded where it stopped,
// instead of retrying forever.
func TestRunnerStopsWhenTheLogCannotBeFollowed(t *testing.T) {
	log := newFakeLog(10)
	bad := domain.Permanent(errors.New("the position is not one of this event store's"))
	log.subErrs = []error{bad}
	p := &stoppingProjection{}
	r := &projections.Runner{Store: log, Projection: p}
	done := make(chan error, 1)
	go func() { done <- r.Run(t.Context()) }()
	var err error
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run kept retrying a permanent failure")
	}
	if !errors.Is(err, domain.ErrPermanent) || !strings.Contains(err.Error(), "not one of this event store's") {
		t.Errorf("Run = %v, want the store's permanent error", err)
	}
	if diff := cmp.Diff([]domain.Position{domain.Start}, p.failedAt); diff != "" {
		t.Errorf("recorded stops (-want +got):\n%s", diff)
	}
	st, serr := r.Status(t.Context())
	if serr != nil {
		t.Fatal(serr)
	}
	if st.State != projections.StateFailed || !strings.Contains(st.LastError, "not one of this event store's") {
		t.Errorf("status = %+v, want failed with the store's error", st)
	}
}
