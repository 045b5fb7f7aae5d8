package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/adapters/postgres/pgtest"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/domaintest"
)

// The contract once more with batching off: every append its own
// statement, the path a lone append and a failed batch take.
func TestContractUnbatched(t *testing.T) {
	domaintest.RunEventStoreTests(t, func(t *testing.T) domain.EventStore {
		s := postgres.NewStore(pgtest.NewPool(t, 80), postgres.StoreConfig{AppendBatch: 1})
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestBatchOutcomesAreEachAppends: in one batch statement every append
// keeps its own expectation and answer, as if it had run alone.
func TestBatchOutcomesAreEachAppends(t *testing.T) {
	ctx := t.Context()
	s := newStore(t)
	p := domaintest.UniquePrefix(t)
	evs := func(n int) []domain.EventData { return domaintest.Events(t, "E", n) }

	// Streams as the appends find them.
	existing := evs(2)
	mustAppend(t, s, p+"existing", domain.NoStream(), existing...)
	mustAppend(t, s, p+"behind", domain.NoStream(), evs(2)...)
	retry := evs(2)
	first := mustAppend(t, s, p+"retry", domain.NoStream(), retry...)
	partial := evs(2)
	mustAppend(t, s, p+"partial", domain.NoStream(), partial[:1]...)
	elsewhere := evs(1)
	mustAppend(t, s, p+"owner", domain.NoStream(), elsewhere...)

	type want struct {
		version int64 // when it lands
		actual  int64 // of its *ConflictError; -9 for none
		reason  string
	}
	cases := []struct {
		name string
		a    postgres.BatchAppend
		want want
	}{
		{"new stream", postgres.BatchAppend{Stream: p + "new", Expected: domain.NoStream(), Events: evs(3)}, want{version: 2, actual: -9}},
		{"exact expectation holds", postgres.BatchAppend{Stream: p + "existing", Expected: domain.Exact(1), Events: evs(2)}, want{version: 3, actual: -9}},
		{"any", postgres.BatchAppend{Stream: p + "any", Expected: domain.Any(), Events: evs(1)}, want{version: 0, actual: -9}},
		{"exact expectation fails", postgres.BatchAppend{Stream: p + "behind", Expected: domain.Exact(0), Events: evs(1)}, want{actual: 1}},
		{"stream exists fails", postgres.BatchAppend{Stream: p + "missing", Expected: domain.StreamExists(), Events: evs(1)}, want{actual: -1}},
		{"idempotent retry", postgres.BatchAppend{Stream: p + "retry", Expected: domain.NoStream(), Events: retry}, want{version: first.Version, actual: -9}},
		{"partial retry", postgres.BatchAppend{Stream: p + "partial", Expected: domain.NoStream(), Events: partial}, want{actual: 0, reason: "some of the event IDs"}},
	}
	run := func(t *testing.T, cases []struct {
		name string
		a    postgres.BatchAppend
		want want
	}, statements uint64) {
		t.Helper()
		before := s.AppendStats().Statements
		appends := make([]postgres.BatchAppend, len(cases))
		for i, c := range cases {
			appends[i] = c.a
		}
		res, errs, byWorker := postgres.AppendTogether(ctx, s, appends)
		if byWorker != 1 {
			t.Errorf("the worker ran %d statements, want only the batch's: its callers do the rest", byWorker)
		}
		for i, c := range cases {
			var ce *domain.ConflictError
			switch {
			case c.want.actual == -9 && errs[i] != nil:
				t.Errorf("%s: %v, want it written", c.name, errs[i])
			case c.want.actual == -9 && res[i].Version != c.want.version:
				t.Errorf("%s: version %d, want %d", c.name, res[i].Version, c.want.version)
			case c.want.actual != -9 && !errors.As(errs[i], &ce):
				t.Errorf("%s: %v, want a *ConflictError", c.name, errs[i])
			case c.want.actual != -9 && (ce.Actual != c.want.actual || !strings.Contains(ce.Reason, c.want.reason)):
				t.Errorf("%s: conflict at %d (%q), want at %d (%q)", c.name, ce.Actual, ce.Reason, c.want.actual, c.want.reason)
			}
		}
		if got := s.AppendStats().Statements - before; got != statements {
			t.Errorf("%d statements, want %d", got, statements)
		}
	}
	t.Run("mixed outcomes", func(t *testing.T) { run(t, cases, 1) })

	// An event ID stored in another stream fails the whole statement: the
	// batch goes again append by append, and only that one is refused.
	t.Run("statement fails", func(t *testing.T) {
		run(t, []struct {
			name string
			a    postgres.BatchAppend
			want want
		}{
			{"before", postgres.BatchAppend{Stream: p + "b1", Expected: domain.NoStream(), Events: evs(2)}, want{version: 1, actual: -9}},
			{"ID used elsewhere", postgres.BatchAppend{Stream: p + "thief", Expected: domain.Any(), Events: elsewhere}, want{actual: -1, reason: "already used in stream " + p + "owner"}},
			{"after", postgres.BatchAppend{Stream: p + "b2", Expected: domain.NoStream(), Events: evs(1)}, want{version: 0, actual: -9}},
		}, 4) // the failed batch, then each alone (by its caller)
	})

	// The streams hold what the outcomes say, and the global log has each
	// stream's events in version order.
	for stream, n := range map[string]int{"new": 3, "existing": 4, "any": 1, "behind": 2, "retry": 2, "partial": 1, "b1": 2, "b2": 1} {
		got, err := s.ReadStream(ctx, p+stream, domain.ReadStreamOptions{})
		if err != nil || len(got) != n {
			t.Errorf("stream %s: %d events, %v; want %d", stream, len(got), err, n)
		}
	}
	for _, stream := range []string{"missing", "thief"} {
		if _, err := s.ReadStream(ctx, p+stream, domain.ReadStreamOptions{}); !errors.Is(err, domain.ErrStreamNotFound) {
			t.Errorf("stream %s: %v, want not found", stream, err)
		}
	}
	all, err := s.ReadAll(ctx, domain.ReadAllOptions{StreamPrefix: p, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	next := map[string]int64{}
	for _, ev := range all {
		if ev.Version != next[ev.Stream] {
			t.Errorf("global log: %s version %d, want %d", ev.Stream, ev.Version, next[ev.Stream])
		}
		next[ev.Stream] = ev.Version + 1
	}
}

// TestBatchesSharingStreamsDoNotDeadlock: two batch statements that
// append to the same streams, each listing them in its own order, run at
// once. They must not deadlock (PostgreSQL would break the cycle only
// after deadlock_timeout, a second by default, stalling both batches); one
// may still fail the whole statement on the other's versions, and its
// appends go again one by one.
func TestBatchesSharingStreamsDoNotDeadlock(t *testing.T) {
	pool := pgtest.NewPool(t, 0)
	var logs domaintest.SyncBuffer
	s := postgres.NewStore(pool, postgres.StoreConfig{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	t.Cleanup(func() { s.Close() })
	p := domaintest.UniquePrefix(t)
	for round := range 3 {
		// Hold both statements at the events table, then let them go
		// together.
		tx := lockEvents(t, pool)
		var wg sync.WaitGroup
		for _, order := range [][]string{{"x", "y"}, {"y", "x"}} {
			wg.Go(func() {
				var appends []postgres.BatchAppend
				for _, stream := range order {
					appends = append(appends, postgres.BatchAppend{Stream: fmt.Sprintf("%s%s%d", p, stream, round), Expected: domain.Any(), Events: domaintest.Events(t, "E", 1000)})
				}
				_, errs, _ := postgres.AppendTogether(t.Context(), s, appends)
				for _, err := range errs {
					if err != nil {
						t.Errorf("round %d: %v", round, err)
					}
				}
			})
		}
		waitFor(t, func() bool {
			var n int
			err := pool.QueryRow(t.Context(), "SELECT count(*) FROM pg_locks WHERE relation = 'events'::regclass AND NOT granted").Scan(&n)
			return err == nil && n >= 2
		})
		if err := tx.Rollback(t.Context()); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
	}
	if strings.Contains(logs.String(), "40P01") {
		t.Errorf("batch statements deadlocked:\n%s", logs.String())
	}
}

// TestConcurrentAppendsShareStatements: writers to many streams at once,
// each appending at exact versions, end with gap-free streams, and the
// store wrote them in fewer statements than appends.
func TestConcurrentAppendsShareStatements(t *testing.T) {
	s := postgres.NewStore(pgtest.NewPool(t, 80), postgres.StoreConfig{AppendWorkers: 1})
	t.Cleanup(func() { s.Close() })
	p := domaintest.UniquePrefix(t)
	const writers, appends = 32, 20
	for _, err := range writeConcurrently(t, s, p, writers, appends, 2, nil) {
		t.Error(err)
	}
	st := s.AppendStats()
	if st.Appends != writers*appends || st.Statements >= st.Appends {
		t.Errorf("stats %+v: want %d appends in fewer statements", st, writers*appends)
	}
	t.Logf("%d appends in %d statements", st.Appends, st.Statements)
}

// TestAppendWindowGathersAppendsWhileBusy: while another append is in
// flight, a worker holds an append for AppendWindow so that the appends
// arriving meanwhile share its statement; a single writer appending one
// after another is not held.
func TestAppendWindowGathersAppendsWhileBusy(t *testing.T) {
	const window = time.Second
	pool := pgtest.NewPool(t, 0)
	s := postgres.NewStore(pool, postgres.StoreConfig{AppendWorkers: 2, AppendWindow: window})
	t.Cleanup(func() { s.Close() })
	p := domaintest.UniquePrefix(t)
	appendTo := func(stream string) {
		if _, err := s.Append(t.Context(), p+stream, domain.Any(), domaintest.Events(t, "E", 1)...); err != nil {
			t.Error(err)
		}
	}
	start := time.Now()
	for range 3 {
		appendTo("alone")
	}
	if d := time.Since(start); d >= window/2 {
		t.Errorf("three appends one after another took %s: they waited for others", d)
	}

	// One append in flight, held by a lock on the table: the next one's
	// worker waits for others, and the eight arriving within the window
	// join its statement.
	tx := lockEvents(t, pool)
	before := s.AppendStats()
	var wg sync.WaitGroup
	wg.Go(func() { appendTo("held") })
	waitFor(t, func() bool { return s.AppendStats().Statements == before.Statements+1 }) // its worker runs it
	for i := range 9 {
		wg.Go(func() { appendTo(fmt.Sprintf("busy-%d", i)) })
		time.Sleep(10 * time.Millisecond)
	}
	if err := tx.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if got := s.AppendStats().Statements - before.Statements; got != 2 {
		t.Errorf("an append in flight and 9 arriving within the window took %d statements, want 2", got)
	}
}

// TestQueuedAppendWithdrawn: an append whose caller gives up while it
// waits for a busy worker is never written.
func TestQueuedAppendWithdrawn(t *testing.T) {
	pool := pgtest.NewPool(t, 0)
	s := postgres.NewStore(pool, postgres.StoreConfig{AppendWorkers: 1})
	t.Cleanup(func() { s.Close() })
	p := domaintest.UniquePrefix(t)

	// Hold the one worker: its statement waits for a table lock.
	tx := lockEvents(t, pool)
	held := make(chan error, 1)
	go func() {
		_, err := s.Append(t.Context(), p+"held", domain.NoStream(), domaintest.Events(t, "E", 1)...)
		held <- err
	}()
	waitFor(t, func() bool {
		var n int
		err := pool.QueryRow(t.Context(), "SELECT count(*) FROM pg_locks WHERE relation = 'events'::regclass AND NOT granted").Scan(&n)
		return err == nil && n > 0
	})
	// Two appends give up, so that a worker that took them would write
	// them as a batch, under its own context rather than their callers'.
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	gaveUp := []string{p + "gaveup1", p + "gaveup2"}
	var wg sync.WaitGroup
	for _, stream := range gaveUp {
		wg.Go(func() {
			if _, err := s.Append(ctx, stream, domain.NoStream(), domaintest.Events(t, "E", 1)...); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "nothing written") {
				t.Errorf("append to %s given up: %v, want deadline exceeded, nothing written", stream, err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if err := tx.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-held; err != nil {
		t.Fatalf("held append: %v", err)
	}
	mustAppend(t, s, p+"after", domain.NoStream(), domaintest.Events(t, "E", 1)...)
	for _, stream := range gaveUp {
		if _, err := s.ReadStream(t.Context(), stream, domain.ReadStreamOptions{}); !errors.Is(err, domain.ErrStreamNotFound) {
			t.Errorf("withdrawn append to %s: read %v, want not found", stream, err)
		}
	}
}

// TestCloseWithAppendsQueued: appends waiting when the store closes are
// written all the same, each by itself.
func TestCloseWithAppendsQueued(t *testing.T) {
	s := postgres.NewStore(pgtest.NewPool(t, 80), postgres.StoreConfig{AppendWorkers: 1})
	p := domaintest.UniquePrefix(t)
	const writers, appends = 16, 30
	errs := writeConcurrently(t, s, p, writers, appends, 1, func() {
		waitFor(t, func() bool { return s.AppendStats().Appends >= writers*appends/4 })
		s.Close()
	})
	for _, err := range errs {
		t.Error(err)
	}
	for w := range writers {
		got, err := s.ReadStream(t.Context(), fmt.Sprintf("%sw%d", p, w), domain.ReadStreamOptions{})
		if err != nil || len(got) != appends {
			t.Errorf("writer %d: %d events, %v; want %d", w, len(got), err, appends)
		}
	}
}

// writeConcurrently runs writers goroutines, each appending appends times
// n events at exact versions to its own stream (prefix + "w" + number),
// calls during (when set) while they run, and returns what went wrong.
func writeConcurrently(t *testing.T, s *postgres.Store, prefix string, writers, appends, n int, during func()) []error {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			stream := fmt.Sprintf("%sw%d", prefix, w)
			for i := range appends {
				res, err := s.Append(t.Context(), stream, domain.Exact(int64(n*i-1)), domaintest.Events(t, "E", n)...)
				if err != nil {
					errs <- fmt.Errorf("%s append %d: %w", stream, i, err)
					return
				}
				if res.Version != int64(n*i+n-1) {
					errs <- fmt.Errorf("%s: append %d landed at %d", stream, i, res.Version)
					return
				}
			}
		})
	}
	if during != nil {
		during()
	}
	wg.Wait()
	close(errs)
	var out []error
	for err := range errs {
		out = append(out, err)
	}
	return out
}

func mustAppend(t *testing.T, s *postgres.Store, stream string, exp domain.ExpectedVersion, evs ...domain.EventData) domain.AppendResult {
	t.Helper()
	res, err := s.Append(t.Context(), stream, exp, evs...)
	if err != nil {
		t.Fatalf("append to %s: %v", stream, err)
	}
	return res
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// lockEvents holds the events table in a transaction of pool's until it
// is rolled back (at the latest when the test ends), so appends wait.
func lockEvents(t *testing.T, pool *pgxpool.Pool) pgx.Tx {
	t.Helper()
	tx, err := pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	if _, err := tx.Exec(t.Context(), "LOCK TABLE events IN EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	return tx
}
