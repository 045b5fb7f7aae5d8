package projections_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/projections"
)

// fakeCopies is a hand-written Rebuildable keeping its copies in memory.
type fakeCopies struct {
	mu        sync.Mutex
	live      *fakeProjection
	liveLog   string
	shadow    *fakeProjection // nil until Prepare
	old       *fakeProjection
	locked    bool
	contended int   // swaps refused with ErrSwapContended before one goes through
	swapErr   error // returned by every swap
	calls     []string
	needs     []domain.Position // what the swaps' catch-ups returned
}

func (c *fakeCopies) note(call string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, call)
}

// liveView is the projection of whichever copy is live.
type liveView struct{ c *fakeCopies }

func (v liveView) Name() string { return "fake" }
func (v liveView) Checkpoint(ctx context.Context) (domain.Position, error) {
	v.c.mu.Lock()
	live := v.c.live
	v.c.mu.Unlock()
	return live.Checkpoint(ctx)
}
func (v liveView) Apply(ctx context.Context, batch []domain.RecordedEvent) error {
	v.c.mu.Lock()
	live := v.c.live
	v.c.mu.Unlock()
	return live.Apply(ctx, batch)
}

func (c *fakeCopies) Live() projections.Projection { return liveView{c} }

func (c *fakeCopies) Prepare(context.Context) (projections.Projection, bool, func(), error) {
	c.note("prepare")
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.locked {
		return nil, false, nil, projections.ErrRebuildRunning
	}
	c.locked = true
	resumed := c.shadow != nil
	if !resumed {
		c.shadow = &fakeProjection{}
	}
	return c.shadow, resumed, func() { c.mu.Lock(); c.locked = false; c.mu.Unlock() }, nil
}

func (c *fakeCopies) DropShadow(context.Context) (bool, error) {
	c.note("drop shadow")
	c.mu.Lock()
	defer c.mu.Unlock()
	had := c.shadow != nil
	c.shadow = nil
	return had, nil
}

func (c *fakeCopies) hold(ctx context.Context, catchUp projections.CatchUpFunc) error {
	c.mu.Lock()
	cp := projections.Checkpoint{Position: c.live.cp, Log: c.liveLog}
	c.mu.Unlock()
	need, err := catchUp(ctx, cp)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.needs = append(c.needs, need)
	if c.shadow.cp.Less(need) {
		return projections.ErrShadowBehind
	}
	return nil
}

func (c *fakeCopies) Swap(ctx context.Context, catchUp projections.CatchUpFunc) (projections.SwapResult, error) {
	c.note("swap")
	c.mu.Lock()
	switch {
	case c.swapErr != nil:
		c.mu.Unlock()
		return projections.SwapResult{}, c.swapErr
	case c.contended > 0:
		c.contended--
		c.mu.Unlock()
		return projections.SwapResult{}, fmt.Errorf("lock timeout: %w", projections.ErrSwapContended)
	case c.old != nil:
		c.mu.Unlock()
		return projections.SwapResult{}, projections.ErrOldCopyExists
	}
	c.mu.Unlock()
	if err := c.hold(ctx, catchUp); err != nil {
		return projections.SwapResult{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	res := projections.SwapResult{Live: c.live.cp, Shadow: c.shadow.cp}
	c.old, c.live, c.shadow = c.live, c.shadow, nil
	return res, nil
}

func (c *fakeCopies) Compare(ctx context.Context, catchUp projections.CatchUpFunc) (projections.Diff, error) {
	c.note("compare")
	if err := c.hold(ctx, catchUp); err != nil {
		return projections.Diff{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	live, shadow := positions(c.live.applied), positions(c.shadow.applied)
	p := projections.DiffPart{What: "events", Live: int64(len(live)), Shadow: int64(len(shadow))}
	for _, k := range live {
		if !slices.Contains(shadow, k) {
			p.Missing++
			p.Examples = append(p.Examples, k)
		}
	}
	for _, k := range shadow {
		if !slices.Contains(live, k) {
			p.Extra++
		}
	}
	return projections.Diff{Live: c.live.cp, Shadow: c.shadow.cp, Parts: []projections.DiffPart{p}}, nil
}

func (c *fakeCopies) OldCopy(context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.old == nil {
		return "", nil
	}
	return "the old fake", nil
}

func (c *fakeCopies) DropOld(context.Context) (bool, error) {
	c.note("drop old")
	c.mu.Lock()
	defer c.mu.Unlock()
	had := c.old != nil
	c.old = nil
	return had, nil
}

// eventCountingLog is a fakeLog that counts events, as the Postgres store does.
type eventCountingLog struct{ *fakeLog }

func (l eventCountingLog) CountEvents(ctx context.Context, after, upTo domain.Position, prefix string) (int64, error) {
	evs, _ := l.after(after, prefix, 1<<30)
	var n int64
	for _, ev := range evs {
		if !upTo.Less(ev.Position) {
			n++
		}
	}
	return n, nil
}

// liveUpTo applies the room events of log up to and including the n-th
// event to the live copy.
func liveUpTo(t *testing.T, c *fakeCopies, evs []domain.RecordedEvent, n int) {
	t.Helper()
	var rooms []domain.RecordedEvent
	for _, ev := range evs[:n] {
		if ev.Stream[:5] == "room-" {
			rooms = append(rooms, ev)
		}
	}
	if err := c.live.Apply(t.Context(), rooms); err != nil {
		t.Fatal(err)
	}
}

func TestRebuildSwapsAShadowCaughtUpWithTheLiveCopy(t *testing.T) {
	log := newFakeLog(1000)
	evs := log.add("room-1", "room-2", "user-1", "room-1", "room-3", "room-2")
	c := &fakeCopies{live: &fakeProjection{}}
	liveUpTo(t, c, evs, 4)
	var progress []projections.RebuildProgress
	res, err := projections.Rebuild(t.Context(), projections.RebuildOptions{
		Store: eventCountingLog{log}, Target: c, Batch: 2,
		Progress: func(p projections.RebuildProgress) { progress = append(progress, p) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(c.calls, []string{"prepare", "swap"}); diff != "" {
		t.Errorf("steps (-got +want):\n%s", diff)
	}
	// The swap made the shadow, holding every room event, live.
	if diff := cmp.Diff(positions(c.live.applied), positions([]domain.RecordedEvent{evs[0], evs[1], evs[3], evs[4], evs[5]})); diff != "" {
		t.Errorf("the new live copy (-got +want):\n%s", diff)
	}
	if c.old == nil || c.old.cp != evs[3].Position || res.Old != "the old fake" {
		t.Errorf("old copy %+v, reported as %q; want the previous live copy at %s", c.old, res.Old, evs[3].Position)
	}
	if res.Swapped != (projections.SwapResult{Live: evs[3].Position, Shadow: evs[5].Position}) || res.Attempts != 1 || res.Applied != 5 {
		t.Errorf("result %+v", res)
	}
	if diff := cmp.Diff(c.needs, []domain.Position{evs[3].Position}); diff != "" {
		t.Errorf("the swap's catch-up asked for (-got +want):\n%s", diff)
	}
	// One pass of three batches, counted: 2, 4, 5 of 5, then its end.
	var got []string
	for _, p := range progress {
		got = append(got, fmt.Sprintf("%d %d/%d %t", p.Pass, p.Applied, p.Total, p.Done))
	}
	if diff := cmp.Diff(got, []string{"1 2/5 false", "1 4/5 false", "1 5/5 false", "1 5/5 true"}); diff != "" {
		t.Errorf("progress (-got +want):\n%s", diff)
	}
	if c.locked {
		t.Error("the rebuild's lock was not released")
	}
}

func TestRebuildRefusesWhileAnOldCopyIsKept(t *testing.T) {
	log := newFakeLog(1000)
	evs := log.add("room-1", "room-2")
	c := &fakeCopies{live: &fakeProjection{}, old: &fakeProjection{}}
	liveUpTo(t, c, evs, 2)
	_, err := projections.Rebuild(t.Context(), projections.RebuildOptions{Store: log, Target: c})
	if !errors.Is(err, projections.ErrOldCopyExists) || c.calls != nil {
		t.Fatalf("Rebuild = %v after %v, want ErrOldCopyExists before any step", err, c.calls)
	}
	res, err := projections.Rebuild(t.Context(), projections.RebuildOptions{Store: log, Target: c, DropOld: true})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(c.calls, []string{"drop old", "prepare", "swap", "drop old"}); diff != "" {
		t.Errorf("steps with DropOld (-got +want):\n%s", diff)
	}
	if c.old != nil || !res.DroppedOld || res.Old != "" {
		t.Errorf("old copy %+v after DropOld, result %+v", c.old, res)
	}
}

func TestRebuildRetriesAContendedSwap(t *testing.T) {
	for _, tc := range []struct {
		name         string
		contended    int
		swapErr      error
		wantAttempts int
		wantErr      error
	}{
		{"contended twice", 2, nil, 3, nil},
		{"contended every time", 10, nil, 3, projections.ErrSwapContended},
		{"another error is not retried", 0, projections.ErrShadowBehind, 1, projections.ErrShadowBehind},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				log := newFakeLog(1000)
				log.add("room-1", "room-2")
				c := &fakeCopies{live: &fakeProjection{}, contended: tc.contended, swapErr: tc.swapErr}
				res, err := projections.Rebuild(t.Context(), projections.RebuildOptions{Store: log, Target: c, Attempts: 3})
				if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) || res.Attempts != tc.wantAttempts {
					t.Errorf("Rebuild = %d attempts, %v; want %d, %v", res.Attempts, err, tc.wantAttempts, tc.wantErr)
				}
				if err != nil && (c.shadow == nil || res.Shadow != c.shadow.cp || res.Shadow.IsZero()) {
					t.Errorf("a failed rebuild reports the shadow at %s; want it kept, at its checkpoint", res.Shadow)
				}
			})
		})
	}
}

func TestRebuildReplacesALiveCopyOfAnotherLog(t *testing.T) {
	log := &namedLog{fakeLog: newFakeLog(1000), id: "kurrentdb:new"}
	log.add("room-1", "room-2")
	// The live copy followed another log, much further than this one goes.
	c := &fakeCopies{live: &fakeProjection{cp: domain.Position{Commit: 1 << 40}}, liveLog: "postgres:old"}
	res, err := projections.Rebuild(t.Context(), projections.RebuildOptions{Store: log, Target: c})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(c.needs, []domain.Position{domain.Start}); diff != "" {
		t.Errorf("the swap's catch-up asked for (-got +want):\n%s", diff)
	}
	if len(c.live.applied) != 2 || res.Swapped.Live != (domain.Position{Commit: 1 << 40}) {
		t.Errorf("after the swap the live copy holds %d events, result %+v", len(c.live.applied), res)
	}

	// A dry run has nothing to compare with such a copy.
	c = &fakeCopies{live: &fakeProjection{cp: domain.Position{Commit: 1 << 40}}, liveLog: "postgres:old"}
	_, err = projections.Rebuild(t.Context(), projections.RebuildOptions{Store: log, Target: c, DryRun: true})
	if !errors.Is(err, projections.ErrWrongLog) || c.shadow != nil {
		t.Errorf("dry run = %v, shadow %v; want ErrWrongLog and the scratch shadow dropped", err, c.shadow)
	}
}

func TestDryRunComparesAndDropsItsShadow(t *testing.T) {
	log := newFakeLog(1000)
	evs := log.add("room-1", "room-2", "room-1", "room-3")
	c := &fakeCopies{live: &fakeProjection{}}
	liveUpTo(t, c, evs, 3)
	res, err := projections.Rebuild(t.Context(), projections.RebuildOptions{Store: log, Target: c, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Diff == nil || !res.Diff.Equal() || res.Diff.Live != evs[2].Position {
		t.Errorf("diff %+v, want equal copies at %s", res.Diff, evs[2].Position)
	}
	if diff := cmp.Diff(c.calls, []string{"prepare", "compare", "drop shadow"}); diff != "" {
		t.Errorf("steps (-got +want):\n%s", diff)
	}
	if c.shadow != nil || c.old != nil || len(c.live.applied) != 3 {
		t.Errorf("the dry run changed the copies: shadow %v, old %v, %d live events", c.shadow, c.old, len(c.live.applied))
	}

	// A live copy that lost an event differs.
	c.live.applied = c.live.applied[1:]
	res, err = projections.Rebuild(t.Context(), projections.RebuildOptions{Store: log, Target: c, DryRun: true})
	if err != nil || res.Diff.Equal() || res.Diff.Parts[0].Extra != 1 {
		t.Errorf("dry run over a damaged copy = %+v, %v; want one extra event", res.Diff, err)
	}
}

func TestRebuildResumesItsShadow(t *testing.T) {
	log := newFakeLog(1000)
	evs := log.add("room-1", "room-2", "room-3")
	c := &fakeCopies{live: &fakeProjection{}, shadow: &fakeProjection{}}
	if err := c.shadow.Apply(t.Context(), evs[:1]); err != nil {
		t.Fatal(err)
	}
	res, err := projections.Rebuild(t.Context(), projections.RebuildOptions{Store: log, Target: c})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Resumed || res.From != evs[0].Position || res.Applied != 2 {
		t.Errorf("result %+v, want resumed from %s, 2 events applied", res, evs[0].Position)
	}
	c.locked = true
	if _, err := projections.Rebuild(t.Context(), projections.RebuildOptions{Store: log, Target: c, DropOld: true}); !errors.Is(err, projections.ErrRebuildRunning) {
		t.Errorf("a second rebuild at once = %v, want ErrRebuildRunning", err)
	}
}
