package postgres_test

import (
	"context"
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

// events collects what a subscription delivers.
type events struct {
	mu  sync.Mutex
	got []domain.RecordedEvent
}

func (e *events) handle(_ context.Context, b []domain.RecordedEvent) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, b...)
	return nil
}

func (e *events) streams() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.got {
		out = append(out, ev.Stream)
	}
	return out
}

// subscribe collects what store's subscription to the streams of prefix
// delivers until the test ends.
func subscribe(t *testing.T, store *postgres.Store, prefix string) *events {
	t.Helper()
	got := &events{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- store.SubscribeAll(ctx, domain.SubscribeAllOptions{StreamPrefix: prefix}, got.handle) }()
	t.Cleanup(func() { cancel(); <-done })
	return got
}

func waitStreams(t *testing.T, e *events, n int) []string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if got := e.streams(); len(got) >= n {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %d events, have %v", n, e.streams())
	return nil
}

// TestLateCommitIsNeverSkipped is the "skipped global position" bug: a
// transaction that started appending first but commits last must still be
// delivered, in order, to a subscription that has already seen later events
// committed meanwhile. With rollback, the held-back events are delivered
// once the slow transaction is gone.
func TestLateCommitIsNeverSkipped(t *testing.T) {
	for _, outcome := range []string{"commit", "rollback"} {
		t.Run(outcome, func(t *testing.T) {
			pool := pgtest.NewPool(t, 0)
			store := postgres.NewStore(pool, postgres.StoreConfig{PollInterval: 20 * time.Millisecond})
			t.Cleanup(func() { store.Close() })
			prefix := domaintest.UniquePrefix(t)
			got := subscribe(t, store, prefix)

			// The slow writer: appends to "slow" inside an open transaction.
			tx := beginOwnConn(t, pool.Config().ConnConfig.ConnString())
			slow := domaintest.Events(t, "Slow", 1)[0]
			if _, err := tx.Exec(t.Context(), `INSERT INTO events (txid, stream, version, id, type, data)
				VALUES (pg_current_xact_id()::text::bigint, $1, 0, $2, $3, $4)`,
				prefix+"slow", slow.ID, slow.Type, string(slow.Data)); err != nil {
				t.Fatal(err)
			}

			// A fast writer commits after the slow one took its position.
			if _, err := store.Append(t.Context(), prefix+"fast", domain.Any(), domaintest.Events(t, "Fast", 1)...); err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond) // many poll intervals
			if s := got.streams(); len(s) != 0 {
				t.Fatalf("subscription delivered %v while an older transaction was still open; a reader checkpointing there would skip it", s)
			}
			page, err := store.ReadAll(t.Context(), domain.ReadAllOptions{StreamPrefix: prefix})
			if err != nil || len(page) != 0 {
				t.Fatalf("ReadAll while the older transaction is open = %d events, %v; want none yet", len(page), err)
			}

			want := []string{prefix + "slow", prefix + "fast"}
			if outcome == "commit" {
				err = tx.Commit(t.Context())
			} else {
				err = tx.Rollback(t.Context())
				want = want[1:]
			}
			if err != nil {
				t.Fatal(err)
			}
			waitStreams(t, got, len(want))
			time.Sleep(100 * time.Millisecond) // let duplicates arrive, if any
			s := got.streams()
			if len(s) != len(want) || s[0] != want[0] || s[len(s)-1] != want[len(want)-1] {
				t.Errorf("delivered %v, want %v", s, want)
			}
		})
	}
}

// TestListenerDropLosesNothing kills the LISTEN connection; subscriptions
// keep receiving by polling and the listener comes back.
func TestListenerDropLosesNothing(t *testing.T) {
	pool := pgtest.NewPool(t, 0)
	store := postgres.NewStore(pool, postgres.StoreConfig{PollInterval: 50 * time.Millisecond})
	t.Cleanup(func() { store.Close() })
	prefix := domaintest.UniquePrefix(t)
	got := subscribe(t, store, prefix)

	if _, err := store.Append(t.Context(), prefix+"a", domain.Any(), domaintest.Events(t, "E", 1)...); err != nil {
		t.Fatal(err)
	}
	waitStreams(t, got, 1)
	// The listener connects on its own; under load it may not be listening
	// yet, so wait for it before cutting it.
	listening := func() int {
		t.Helper()
		var n int
		if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for deadline := time.Now().Add(10 * time.Second); listening() != 1; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the listener did not connect within 10s")
		}
	}
	var killed int
	err := pool.QueryRow(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()`).Scan(&killed)
	if err != nil || killed != 1 {
		t.Fatalf("terminated %d listener backends (%v), want 1", killed, err)
	}
	for i := range 5 {
		if _, err := store.Append(t.Context(), prefix+"a", domain.Any(), domaintest.Events(t, "E", 1)...); err != nil {
			t.Fatalf("append %d after the listener dropped: %v", i, err)
		}
	}
	waitStreams(t, got, 6)
	// The listener reconnects.
	for deadline := time.Now().Add(10 * time.Second); listening() != 1; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("listener did not reconnect within 10s")
		}
	}
}

// TestEventIDUsedInAnotherStream: IDs are unique across the store.
func TestEventIDUsedInAnotherStream(t *testing.T) {
	store := newStore(t)
	ev := domaintest.Events(t, "E", 1)
	if _, err := store.Append(t.Context(), "room-1", domain.Any(), ev...); err != nil {
		t.Fatal(err)
	}
	_, err := store.Append(t.Context(), "room-2", domain.Any(), ev...)
	if domain.ErrorCode(err) != domain.ECONFLICT {
		t.Fatalf("reusing an event ID in another stream: err = %v, want a conflict", err)
	}
	if _, err := store.ReadStream(t.Context(), "room-2", domain.ReadStreamOptions{}); err == nil {
		t.Errorf("room-2 exists after the refused append")
	}
}

// TestOtherWritersDoNotHoldBack: a long write transaction that does not
// touch the events table — on another table, or in another database of
// the same server — must not hide newer events from ReadAll.
func TestOtherWritersDoNotHoldBack(t *testing.T) {
	pool := pgtest.NewPool(t, 0)
	store := postgres.NewStore(pool, postgres.StoreConfig{})
	t.Cleanup(func() { store.Close() })
	other := pgtest.NewEmptyDatabase(t)
	for _, tc := range []struct{ name, url, stmt string }{
		{"another table", pool.Config().ConnConfig.ConnString(), `CREATE TABLE IF NOT EXISTS busy (n int); INSERT INTO busy VALUES (1)`},
		{"another database", other, `CREATE TABLE IF NOT EXISTS busy (n int); INSERT INTO busy VALUES (1)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tx := beginOwnConn(t, tc.url)
			if _, err := tx.Exec(t.Context(), tc.stmt); err != nil {
				t.Fatal(err)
			}
			prefix := domaintest.UniquePrefix(t)
			res, err := store.Append(t.Context(), prefix+"a", domain.Any(), domaintest.Events(t, "E", 1)...)
			if err != nil {
				t.Fatal(err)
			}
			page, err := store.ReadAll(t.Context(), domain.ReadAllOptions{StreamPrefix: prefix})
			if err != nil || len(page) != 1 {
				t.Fatalf("ReadAll while an unrelated write transaction is open = %d events, %v; want the new one", len(page), err)
			}
			head, err := store.HeadPosition(t.Context())
			if err != nil || head.Less(res.Position) {
				t.Fatalf("head %v, %v; want at least %v", head, err, res.Position)
			}
		})
	}
}

// TestSubscriptionsAreNotHeldBackByOtherWriters: a long write transaction
// that does not touch the events table holds the subscription's cheap
// bound back; the subscription works out the exact bound and delivers the
// newer events anyway, without waiting for it to end.
func TestSubscriptionsAreNotHeldBackByOtherWriters(t *testing.T) {
	pool := pgtest.NewPool(t, 0)
	store := postgres.NewStore(pool, postgres.StoreConfig{ProofInterval: 10 * time.Millisecond})
	t.Cleanup(func() { store.Close() })
	other := pgtest.NewEmptyDatabase(t)
	for _, tc := range []struct{ name, url string }{
		{"another table", pool.Config().ConnConfig.ConnString()},
		{"another database", other},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := domaintest.UniquePrefix(t)
			got := subscribe(t, store, prefix)
			tx := beginOwnConn(t, tc.url)
			if _, err := tx.Exec(t.Context(), `CREATE TABLE IF NOT EXISTS busy (n int); INSERT INTO busy VALUES (1)`); err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				if _, err := store.Append(t.Context(), prefix+"s", domain.Any(), domaintest.Events(t, "E", 1)...); err != nil {
					t.Fatal(err)
				}
				waitStreams(t, got, i+1) // while tx is still open
			}
		})
	}
}

// TestAsyncPoolCarriesOnlyAsyncTypes: appends made only of AsyncTypes go
// through AsyncPool (synchronous_commit=off), any other through the main
// pool, and both read back in one order.
func TestAsyncPoolCarriesOnlyAsyncTypes(t *testing.T) {
	pool := pgtest.NewPool(t, 0)
	acfg := pool.Config().Copy()
	acfg.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
	async, err := pgxpool.NewWithConfig(t.Context(), acfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(async.Close)
	store := postgres.NewStore(pool, postgres.StoreConfig{AsyncPool: async, AsyncTypes: []string{"Chunk"}})
	t.Cleanup(func() { store.Close() })
	stream := domaintest.UniquePrefix(t) + "s"
	steps := []struct {
		types     []string
		wantAsync int64 // acquisitions of the async pool after the step
	}{
		{[]string{"Start"}, 0},
		{[]string{"Chunk", "Chunk"}, 1},
		{[]string{"Chunk", "End"}, 1},
		{[]string{"Chunk"}, 2},
	}
	for i, st := range steps {
		var evs []domain.EventData
		for _, typ := range st.types {
			evs = append(evs, domaintest.Events(t, typ, 1)...)
		}
		if _, err := store.Append(t.Context(), stream, domain.Any(), evs...); err != nil {
			t.Fatal(err)
		}
		if got := async.Stat().AcquireCount(); got != st.wantAsync {
			t.Errorf("step %d (%v): async pool acquired %d times, want %d", i, st.types, got, st.wantAsync)
		}
	}
	var c string
	if err := async.QueryRow(t.Context(), "SELECT current_setting('synchronous_commit')").Scan(&c); err != nil || c != "off" {
		t.Errorf("async pool synchronous_commit = %q, %v", c, err)
	}
	got, err := store.ReadStream(t.Context(), stream, domain.ReadStreamOptions{})
	if err != nil || len(got) != 6 {
		t.Fatalf("read back %d events, %v; want 6", len(got), err)
	}
}

// beginOwnConn opens a connection of its own to url, outside any pool, and
// begins a transaction on it; both end when the test does (a rollback
// after a commit does nothing).
func beginOwnConn(t *testing.T, url string) pgx.Tx {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	tx, err := conn.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback(context.Background()) })
	return tx
}
