// Package projectiontest is the suite every read model that projections
// runs and rebuilds must pass, whatever keeps it (Postgres tables, Redis
// keys): one suite per read model, as every store passes
// domaintest.RunEventStoreTests. It also holds Writers, which append
// concurrent conversations under a test and stop cleanly.
package projectiontest

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
	"github.com/parleychat/parley/domain/room/roomgen"
	"github.com/parleychat/parley/projections"
)

// waitTimeout bounds every wait of the suite.
const waitTimeout = 2 * time.Minute

// Subject is one read model under test, over an empty log and empty
// storage of its own.
type Subject struct {
	// Store is the event log, empty.
	Store domain.EventStore
	// Rebuild returns the read model's Rebuildable; with dryRun, one whose
	// shadow is a dry run's scratch one. Its Live projection is the one
	// the suite runs as chatd would.
	Rebuild func(t *testing.T, dryRun bool) projections.Rebuildable
	// Corrupt changes an entry of the live copy, which holds at least one
	// room, so that it no longer is the fold of the log.
	Corrupt func(t *testing.T)
	// Holds reports whether the read model's storage (live copy and any
	// other) holds text anywhere, as stored: the erasure test's probe.
	Holds func(t *testing.T, text string) bool
	// Sealed says the read model seals conversation text, as chatd runs
	// it (Store is then a privacy.Store): it must never hold it in clear.
	Sealed bool

	appended *trackedStore // Store, noting the appends' positions
}

// trackedStore notes the position of the last event appended through it,
// so that the suite can wait until the log's head reaches it: a store may
// make a committed event readable a moment after its append returns
// (the Postgres store waits for older writers to finish).
type trackedStore struct {
	domain.EventStore
	mu   sync.Mutex
	last domain.Position
}

func (s *trackedStore) Append(ctx context.Context, stream string, expected domain.ExpectedVersion, events ...domain.EventData) (domain.AppendResult, error) {
	res, err := s.EventStore.Append(ctx, stream, expected, events...)
	if err == nil {
		s.mu.Lock()
		if s.last.Less(res.Position) {
			s.last = res.Position
		}
		s.mu.Unlock()
	}
	return res, err
}

// LogID passes the store's log on (projections.LogIdentifier).
func (s *trackedStore) LogID(ctx context.Context) (string, error) {
	return projections.LogOf(ctx, s.EventStore)
}

// RunProjectionTests runs the suite; newSubject returns a fresh Subject
// for each test.
func RunProjectionTests(t *testing.T, newSubject func(t *testing.T) Subject) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s Subject)
	}{
		{"ApplyIsIdempotent", testApplyIsIdempotent},
		{"AnUndecodableEventAppliesNothing", testUndecodableEvent},
		{"CheckpointRecordsItsLog", testCheckpointRecordsItsLog},
		{"DryRunFindsADamagedCopyAndChangesNothing", testDryRunFindsDamage},
		{"RebuildSwapsAndKeepsTheOldCopy", testRebuildSwaps},
		{"RebuildResumesItsShadow", testRebuildResumes},
		{"AShadowOfAnotherLogIsNotResumed", testShadowOfAnotherLog},
		{"SwapRefusesAShadowBehind", testSwapRefusesAShadowBehind},
		{"SwapUnderALiveRunnerLosesNothing", testSwapUnderALiveRunner},
		{"ALiveCopyOfAnotherLogIsReplaced", testLiveCopyOfAnotherLog},
		{"AnErasedRoomLeavesNothing", testErasedRoomLeavesNothing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSubject(t)
			s.appended = &trackedStore{EventStore: s.Store}
			s.Store = s.appended
			tc.fn(t, s)
		})
	}
}

// write appends n generated rooms, numbered from first, and returns the
// log's head once every event is readable.
func write(t *testing.T, s Subject, first int64, n int, seed uint64) domain.Position {
	t.Helper()
	rooms, _ := roomgen.Generate(roomgen.Config{Rooms: n, FirstRoom: first, Seed: seed})
	if _, err := roomgen.Write(t.Context(), s.Store, rooms, 3, 4, nil); err != nil {
		t.Fatal(err)
	}
	return head(t, s)
}

// head waits until every event appended so far is readable and returns
// the log's head.
func head(t *testing.T, s Subject) domain.Position {
	t.Helper()
	s.appended.mu.Lock()
	last := s.appended.last
	s.appended.mu.Unlock()
	deadline := time.Now().Add(waitTimeout)
	for {
		h, err := s.Store.HeadPosition(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if !h.Less(last) {
			return h
		}
		if time.Now().After(deadline) {
			t.Fatalf("the event appended at %s never became readable (head %s)", last, h)
		}
		time.Sleep(time.Millisecond)
	}
}

// roomEvents reads every room event of the log.
func roomEvents(t *testing.T, s Subject) []domain.RecordedEvent {
	t.Helper()
	var out []domain.RecordedEvent
	for ev, err := range domain.AllEvents(t.Context(), s.Store, domain.ReadAllOptions{Limit: 1000, StreamPrefix: room.StreamPrefix}) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

// catchUp applies the log up to upTo to p.
func catchUp(t *testing.T, s Subject, p projections.Projection, upTo domain.Position) {
	t.Helper()
	if _, err := projections.CatchUp(t.Context(), projections.CatchUpOptions{Store: s.Store, Projection: p, Batch: 97}, upTo); err != nil {
		t.Fatal(err)
	}
}

// rebuild runs the protocol.
func rebuild(t *testing.T, s Subject, dryRun, dropOld bool) (projections.RebuildResult, error) {
	t.Helper()
	return projections.Rebuild(t.Context(), projections.RebuildOptions{Store: s.Store, Target: s.Rebuild(t, dryRun), DryRun: dryRun, DropOld: dropOld, Batch: 113})
}

// checkEqual fails unless a dry run finds the live copy equal to the
// fold of the log up to its checkpoint, at want when it is not zero.
func checkEqual(t *testing.T, s Subject, what string, want domain.Position) {
	t.Helper()
	res, err := rebuild(t, s, true, false)
	if err != nil {
		t.Fatalf("%s: dry run: %v", what, err)
	}
	if !res.Diff.Equal() || (!want.IsZero() && res.Diff.Live != want) {
		t.Errorf("%s: the live copy differs from a rebuild at %s: %+v", what, want, *res.Diff)
	}
}

func testApplyIsIdempotent(t *testing.T, s Subject) {
	write(t, s, 1, 20, 1)
	evs := roomEvents(t, s)
	live := s.Rebuild(t, false).Live()
	// Every batch is applied twice, and each overlaps the one before, as
	// a retry after a lost acknowledgement and an at-least-once
	// subscription deliver them.
	for i := 0; i < len(evs); i += 7 {
		batch := evs[max(i-3, 0):min(i+7, len(evs))]
		for range 2 {
			if err := live.Apply(t.Context(), batch); err != nil {
				t.Fatalf("Apply %d events from %d: %v", len(batch), i, err)
			}
		}
		if cp, err := live.Checkpoint(t.Context()); err != nil || cp != batch[len(batch)-1].Position {
			t.Fatalf("checkpoint after a batch = %s, %v; want its last event's %s", cp, err, batch[len(batch)-1].Position)
		}
	}
	// A whole replay from the start changes nothing either.
	if err := live.Apply(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	checkEqual(t, s, "after repeated batches", evs[len(evs)-1].Position)
}

func testUndecodableEvent(t *testing.T, s Subject) {
	write(t, s, 1, 5, 2)
	id, err := domain.NewUUID(rand.NewChaCha8([32]byte{7}))
	if err != nil {
		t.Fatal(err)
	}
	// JSON, but not a MessagePosted: message_id is a number.
	bad, err := s.Store.Append(t.Context(), room.Stream(3), domain.StreamExists(),
		domain.EventData{ID: id, Type: room.TypeMessagePosted, Data: []byte(`{"message_id": 5, "text": "hi"}`)})
	if err != nil {
		t.Fatal(err)
	}
	write(t, s, 100, 3, 3)
	evs := roomEvents(t, s)
	live := s.Rebuild(t, false).Live()
	before, err := live.Checkpoint(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	err = live.Apply(t.Context(), evs)
	var ee *projections.EventError
	if !errors.As(err, &ee) || ee.Position != bad.Position || ee.Stream != room.Stream(3) {
		t.Fatalf("Apply over an undecodable event = %v, want the EventError of %s at %s", err, room.Stream(3), bad.Position)
	}
	if cp, err := live.Checkpoint(t.Context()); err != nil || cp != before {
		t.Errorf("checkpoint after a failed batch = %s, %v; want it unmoved at %s", cp, err, before)
	}
}

func testCheckpointRecordsItsLog(t *testing.T, s Subject) {
	live, ok := s.Rebuild(t, false).Live().(projections.LogBinder)
	if !ok {
		t.Fatal("the read model does not record the log of its checkpoint (projections.LogBinder)")
	}
	for _, tc := range []struct{ bind, want string }{{"log-a", "log-a"}, {"log-b", "log-a"}, {"log-a", "log-a"}} {
		if got, err := live.BindLog(t.Context(), tc.bind); err != nil || got != tc.want {
			t.Errorf("BindLog(%q) = %q, %v; want %q", tc.bind, got, err, tc.want)
		}
	}
	// A projection of it refuses to run on another log.
	write(t, s, 1, 3, 4)
	log, err := projections.LogOf(t.Context(), s.Store)
	if err != nil || log == "" {
		t.Fatalf("the store names no log: %q, %v", log, err)
	}
	_, err = projections.CatchUp(t.Context(), projections.CatchUpOptions{Store: s.Store, Projection: live.(projections.Projection)}, head(t, s))
	var wl *projections.WrongLogError
	if !errors.As(err, &wl) || wl.Bound != "log-a" || wl.Log != log {
		t.Errorf("CatchUp on another log = %v, want a WrongLogError naming log-a and %s", err, log)
	}
}

func testDryRunFindsDamage(t *testing.T, s Subject) {
	h := write(t, s, 1, 30, 5)
	catchUp(t, s, s.Rebuild(t, false).Live(), h)
	checkEqual(t, s, "before the damage", h)
	s.Corrupt(t)
	for range 2 { // the first dry run changed nothing
		res, err := rebuild(t, s, true, false)
		if err != nil {
			t.Fatal(err)
		}
		var differences int64
		for _, p := range res.Diff.Parts {
			differences += p.Differing + p.Missing + p.Extra
		}
		if res.Diff.Equal() || differences == 0 {
			t.Errorf("dry run over a damaged copy = %+v, want a difference", *res.Diff)
		}
	}
	if dropped, err := s.Rebuild(t, true).DropShadow(t.Context()); err != nil || dropped {
		t.Errorf("the dry runs left a shadow (DropShadow = %t, %v)", dropped, err)
	}
	// A rebuild repairs it.
	if _, err := rebuild(t, s, false, true); err != nil {
		t.Fatal(err)
	}
	checkEqual(t, s, "after the rebuild", h)
}

func testRebuildSwaps(t *testing.T, s Subject) {
	h := write(t, s, 1, 30, 6)
	catchUp(t, s, s.Rebuild(t, false).Live(), h)
	res, err := rebuild(t, s, false, false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Swapped.Live != h || res.Swapped.Shadow != h || res.Old == "" || res.Resumed {
		t.Errorf("rebuild = %+v, want a swap at %s keeping the old copy", res, h)
	}
	checkEqual(t, s, "after the swap", h)
	rb := s.Rebuild(t, false)
	if old, err := rb.OldCopy(t.Context()); err != nil || old == "" {
		t.Errorf("OldCopy = %q, %v; want the old copy", old, err)
	}
	if _, err := rebuild(t, s, false, false); !errors.Is(err, projections.ErrOldCopyExists) {
		t.Errorf("a rebuild over the old copy = %v, want ErrOldCopyExists", err)
	}
	// The live copy goes on after the swap.
	h = write(t, s, 100, 5, 7)
	catchUp(t, s, rb.Live(), h)
	res, err = rebuild(t, s, false, true)
	if err != nil || !res.DroppedOld || res.Old != "" {
		t.Fatalf("rebuild --drop-old = %+v, %v; want the old copies dropped", res, err)
	}
	checkEqual(t, s, "after the second swap", h)
	if dropped, err := rb.DropOld(t.Context()); err != nil || dropped {
		t.Errorf("DropOld with nothing to drop = %t, %v", dropped, err)
	}
}

func testRebuildResumes(t *testing.T, s Subject) {
	h := write(t, s, 1, 20, 8)
	catchUp(t, s, s.Rebuild(t, false).Live(), h)
	evs := roomEvents(t, s)
	rb := s.Rebuild(t, false)
	shadow, resumed, release, err := rb.Prepare(t.Context())
	if err != nil || resumed {
		t.Fatalf("first Prepare = %t, %v; want a fresh shadow", resumed, err)
	}
	if _, _, _, err := s.Rebuild(t, false).Prepare(t.Context()); !errors.Is(err, projections.ErrRebuildRunning) {
		t.Errorf("a second Prepare at once = %v, want ErrRebuildRunning", err)
	}
	catchUp(t, s, shadow, evs[len(evs)/2].Position)
	release()
	res, err := rebuild(t, s, false, false)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Resumed || res.From != evs[len(evs)/2].Position || res.Applied != int64(len(evs)-len(evs)/2-1) {
		t.Errorf("rebuild = %+v; want it resumed from %s, applying the %d events after it", res, evs[len(evs)/2].Position, len(evs)-len(evs)/2-1)
	}
	checkEqual(t, s, "after the resumed rebuild", h)
}

func testSwapRefusesAShadowBehind(t *testing.T, s Subject) {
	h := write(t, s, 1, 10, 9)
	catchUp(t, s, s.Rebuild(t, false).Live(), h)
	rb := s.Rebuild(t, false)
	_, _, release, err := rb.Prepare(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	_, err = rb.Swap(t.Context(), func(_ context.Context, live projections.Checkpoint) (domain.Position, error) {
		return live.Position, nil // without catching up
	})
	if !errors.Is(err, projections.ErrShadowBehind) {
		t.Errorf("Swap of an empty shadow = %v, want ErrShadowBehind", err)
	}
	if old, err := rb.OldCopy(t.Context()); err != nil || old != "" {
		t.Errorf("a refused swap left an old copy: %q, %v", old, err)
	}
	release()
	checkEqual(t, s, "after the refused swap", h)
}

func testSwapUnderALiveRunner(t *testing.T, s Subject) {
	write(t, s, 1, 40, 10)
	r := &projections.Runner{Store: s.Store, Projection: s.Rebuild(t, false).Live(), MinBackoff: 10 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("the live runner: %v", err)
		}
	}()
	w := StartWriters(t, s.Store, 10_000, 11)
	for w.Rounds() < 1 {
		time.Sleep(time.Millisecond)
	}
	res, err := rebuild(t, s, false, false)
	if err != nil {
		t.Fatal(err)
	}
	during := w.Rounds()
	time.Sleep(100 * time.Millisecond) // appends on the swapped copy
	if err := w.Stop(); err != nil {
		t.Fatal(err)
	}
	h := head(t, s)
	wctx, wcancel := context.WithTimeout(t.Context(), waitTimeout)
	defer wcancel()
	if err := r.WaitFor(wctx, h); err != nil {
		t.Fatalf("the live runner did not catch up after the swap: %v", err)
	}
	if st, err := r.Status(t.Context()); err != nil || st.State != projections.StateRunning || st.LastError != "" || !st.CaughtUp {
		t.Errorf("live runner after the swap: %+v, %v; want running, caught up, no error", st, err)
	}
	if during < 2 || w.Rounds() <= during {
		t.Logf("writers: %d rounds by the swap, %d in all: the swap may not have raced them", during, w.Rounds())
	}
	t.Logf("swapped at %s (live at %s) after %d attempts; %d rounds written", res.Swapped.Shadow, res.Swapped.Live, res.Attempts, w.Rounds())
	checkEqual(t, s, "after a swap under writers and a live runner", h)
}

func testLiveCopyOfAnotherLog(t *testing.T, s Subject) {
	h := write(t, s, 1, 10, 12)
	live := s.Rebuild(t, false).Live()
	binder, ok := live.(projections.LogBinder)
	if !ok {
		t.Fatal("the read model does not record the log of its checkpoint (projections.LogBinder)")
	}
	// The live copy followed another log, as far as this one goes.
	if _, err := binder.BindLog(t.Context(), "another-log"); err != nil {
		t.Fatal(err)
	}
	evs := roomEvents(t, s)
	if err := live.Apply(t.Context(), evs[:len(evs)/2]); err != nil {
		t.Fatal(err)
	}
	if _, err := rebuild(t, s, true, false); !errors.Is(err, projections.ErrWrongLog) {
		t.Errorf("dry run against a copy of another log = %v, want ErrWrongLog", err)
	}
	if _, err := rebuild(t, s, false, false); err != nil {
		t.Fatalf("rebuild replacing a copy of another log: %v", err)
	}
	log, err := projections.LogOf(t.Context(), s.Store)
	if err != nil {
		t.Fatal(err)
	}
	if bound, err := binder.BindLog(t.Context(), log); err != nil || bound != log {
		t.Errorf("the live copy's log after the rebuild = %q, %v; want %q", bound, err, log)
	}
	checkEqual(t, s, "after replacing a copy of another log", h)
	if cp, err := live.Checkpoint(t.Context()); err != nil || cp != h {
		t.Errorf("live checkpoint = %s, %v; want %s", cp, err, h)
	}
}

func testShadowOfAnotherLog(t *testing.T, s Subject) {
	h := write(t, s, 1, 10, 13)
	catchUp(t, s, s.Rebuild(t, false).Live(), h)
	evs := roomEvents(t, s)
	// A rebuild interrupted while the store was another one.
	shadow, _, release, err := s.Rebuild(t, false).Prepare(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if bound, err := shadow.(projections.LogBinder).BindLog(t.Context(), "another-log"); err != nil || bound != "another-log" {
		t.Fatalf("BindLog = %q, %v", bound, err)
	}
	if err := shadow.Apply(t.Context(), evs[:len(evs)/2]); err != nil {
		t.Fatal(err)
	}
	release()
	res, err := rebuild(t, s, false, false)
	if err != nil {
		t.Fatalf("rebuild over a shadow of another log: %v", err)
	}
	if res.Resumed || res.Applied != int64(len(evs)) {
		t.Errorf("rebuild = %+v, want it started afresh, applying all %d events", res, len(evs))
	}
	checkEqual(t, s, "after the rebuild", h)
}
