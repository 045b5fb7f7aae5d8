package projections_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/projections"
)

// failingReader fails the first reads of a log with errs.
type failingReader struct {
	*fakeLog
	mu    sync.Mutex
	errs  []error
	reads int
}

func (r *failingReader) ReadAll(ctx context.Context, opts domain.ReadAllOptions) ([]domain.RecordedEvent, error) {
	r.mu.Lock()
	r.reads++
	var err error
	if len(r.errs) > 0 {
		err, r.errs = r.errs[0], r.errs[1:]
	}
	r.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return r.fakeLog.ReadAll(ctx, opts)
}

// stoppingProjection also records where it was stopped.
type stoppingProjection struct {
	fakeProjection
	failedAt []domain.Position
	batches  []int
}

func (p *stoppingProjection) Apply(ctx context.Context, batch []domain.RecordedEvent) error {
	p.mu.Lock()
	p.batches = append(p.batches, len(batch))
	p.mu.Unlock()
	return p.fakeProjection.Apply(ctx, batch)
}

func (p *stoppingProjection) RecordFailure(_ context.Context, at domain.Position, msg string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failedAt = append(p.failedAt, at)
	p.recorded = append(p.recorded, msg)
	return nil
}

func TestCatchUpAppliesUpToAPositionAndResumes(t *testing.T) {
	for _, batch := range []int{1, 3, 1000} {
		t.Run(fmt.Sprintf("batches of %d", batch), func(t *testing.T) {
			log := newFakeLog(1)
			evs := log.add("room-1", "user-1", "room-2", "room-1", "room-3", "other", "room-2", "room-1", "room-4", "room-4")
			p := &stoppingProjection{}
			var progress []projections.CatchUpProgress
			opts := projections.CatchUpOptions{Store: log, Projection: p, Batch: batch, Progress: func(pr projections.CatchUpProgress) {
				progress = append(progress, pr)
			}}

			// Up to the fifth event (room-3): the room events among the first five.
			got, err := projections.CatchUp(t.Context(), opts, evs[4].Position)
			if err != nil {
				t.Fatal(err)
			}
			if want := (projections.CatchUpProgress{Applied: 4, Checkpoint: evs[4].Position}); got != want {
				t.Errorf("CatchUp = %+v, want %+v", got, want)
			}
			applied, _, _ := p.snapshot()
			if diff := cmp.Diff(positions(applied), positions([]domain.RecordedEvent{evs[0], evs[2], evs[3], evs[4]})); diff != "" {
				t.Errorf("applied (-got +want):\n%s", diff)
			}
			for _, n := range p.batches {
				if n > batch {
					t.Errorf("a batch of %d events, want at most %d", n, batch)
				}
			}
			if len(progress) != len(p.batches) || progress[len(progress)-1] != got {
				t.Errorf("progress %+v after batches %v", progress, p.batches)
			}

			// Again up to the same place: nothing to do.
			if got, err := projections.CatchUp(t.Context(), opts, evs[4].Position); err != nil || got.Applied != 0 {
				t.Errorf("a second CatchUp = %+v, %v; want nothing applied", got, err)
			}
			// Then to a position past the end of a non-room event: from the checkpoint on.
			got, err = projections.CatchUp(t.Context(), opts, evs[5].Position)
			if err != nil || got.Applied != 0 || got.Checkpoint != evs[4].Position {
				t.Errorf("CatchUp to a non-room event = %+v, %v; want nothing applied", got, err)
			}
			head, _ := log.HeadPosition(t.Context())
			got, err = projections.CatchUp(t.Context(), opts, head)
			if err != nil || got.Applied != 4 || got.Checkpoint != evs[9].Position {
				t.Errorf("CatchUp to the head = %+v, %v; want the last 4 applied", got, err)
			}
			applied, _, _ = p.snapshot()
			if len(applied) != 8 {
				t.Errorf("applied %d events in all, want the 8 room events", len(applied))
			}
		})
	}
}

func TestCatchUpStopsOnAnEventError(t *testing.T) {
	log := newFakeLog(1)
	evs := log.add("room-1", "room-1", "room-2")
	bad := projections.NewEventError(evs[1], errors.New("json: cannot unmarshal number into Go struct field"))
	p := &stoppingProjection{}
	p.fails = []error{fmt.Errorf("postgres: apply: %w", bad)}
	got, err := projections.CatchUp(t.Context(), projections.CatchUpOptions{Store: log, Projection: p, MinBackoff: time.Millisecond}, evs[2].Position)
	var ee *projections.EventError
	if !errors.As(err, &ee) || ee.Position != evs[1].Position {
		t.Fatalf("CatchUp = %v, want the EventError of %s", err, evs[1].Position)
	}
	if !strings.Contains(err.Error(), "fake") || !strings.Contains(err.Error(), evs[1].Position.String()) {
		t.Errorf("error %q does not name the projection and the position", err)
	}
	if got.Applied != 0 || len(p.batches) != 1 {
		t.Errorf("applied %d events in %d calls, want one call and nothing applied: an EventError is not retried", got.Applied, len(p.batches))
	}
	if diff := cmp.Diff(p.failedAt, []domain.Position{evs[1].Position}); diff != "" {
		t.Errorf("recorded failures (-got +want):\n%s", diff)
	}
}

func TestCatchUpRetriesFailuresThatMayPass(t *testing.T) {
	log := newFakeLog(1)
	evs := log.add("room-1", "room-2", "room-3")
	flaky := errors.New("connection reset")
	for _, tc := range []struct {
		name        string
		readErrs    []error
		applyErrs   []error
		attempts    int
		wantErr     bool
		wantApplied int64
	}{
		{"a read fails twice", []error{flaky, flaky}, nil, 3, false, 3},
		{"an apply fails twice", nil, []error{flaky, flaky}, 3, false, 3},
		{"reads fail too often", []error{flaky, flaky, flaky}, nil, 3, true, 0},
		{"applies fail too often", nil, []error{flaky, flaky, flaky}, 3, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &stoppingProjection{}
			p.fails = tc.applyErrs
			r := &failingReader{fakeLog: log, errs: tc.readErrs}
			got, err := projections.CatchUp(t.Context(), projections.CatchUpOptions{
				Store: r, Projection: p, Attempts: tc.attempts, MinBackoff: time.Millisecond, Batch: 10,
			}, evs[2].Position)
			if (err != nil) != tc.wantErr || got.Applied != tc.wantApplied {
				t.Fatalf("CatchUp = %+v, %v; want %d applied, error %t", got, err, tc.wantApplied, tc.wantErr)
			}
			if tc.wantErr && !errors.Is(err, flaky) {
				t.Errorf("error %v does not wrap the cause", err)
			}
			if len(p.failedAt) != 0 {
				t.Errorf("a failure that may pass was recorded as a stop at %v", p.failedAt)
			}
			_, _, rec := p.snapshot()
			if tc.applyErrs != nil && tc.wantErr && len(rec) != 1 {
				t.Errorf("recorded %q, want the last error", rec)
			}
		})
	}
}

// blockingProjection blocks in Apply until its context ends.
type blockingProjection struct {
	fakeProjection
	entered chan struct{}
}

func (p *blockingProjection) Apply(ctx context.Context, _ []domain.RecordedEvent) error {
	close(p.entered)
	<-ctx.Done()
	return ctx.Err()
}

func TestCatchUpEndsWithItsContext(t *testing.T) {
	log := newFakeLog(1)
	var streams []string
	for range 50 {
		streams = append(streams, "room-1")
	}
	evs := log.add(streams...)
	p := &blockingProjection{entered: make(chan struct{})}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := projections.CatchUp(ctx, projections.CatchUpOptions{Store: log, Projection: p, Batch: 5}, evs[49].Position)
		done <- err
	}()
	<-p.entered // the reader is a batch ahead by now, blocked on sending
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("CatchUp = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("CatchUp did not return after its context ended")
	}
}

func TestRunnerRecordsWhereItStopped(t *testing.T) {
	log := newFakeLog(10)
	evs := log.add("room-1", "room-1")
	p := &stoppingProjection{}
	p.fails = []error{fmt.Errorf("apply: %w", projections.NewEventError(evs[1], errors.New("bad data")))}
	r := &projections.Runner{Store: log, Projection: p}
	if err := r.Run(t.Context()); err == nil {
		t.Fatal("Run = nil, want the EventError")
	}
	if diff := cmp.Diff(p.failedAt, []domain.Position{evs[1].Position}); diff != "" {
		t.Errorf("recorded failures (-got +want):\n%s", diff)
	}
	_, _, rec := p.snapshot()
	if len(rec) != 1 || !strings.Contains(rec[0], "bad data") {
		t.Errorf("recorded %q, want the error", rec)
	}
}
