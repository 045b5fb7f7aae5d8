package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/adapters/postgres/pgtest"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
	"github.com/parleychat/parley/projections"
)

// rebuildEnv is a chat env whose live ChatLog holds a few rooms, and a
// rebuild of it.
type rebuildEnv struct {
	*chatEnv
	rb *postgres.ChatLogRebuild
}

func newRebuildEnv(t *testing.T, cfg postgres.ChatLogRebuildConfig) *rebuildEnv {
	t.Helper()
	e := newChatEnv(t, 0)
	for id := int64(1); id <= 3; id++ {
		appendRoom(t, e.store, id,
			room.RoomCreated{RoomID: id, OwnerID: "alice", Title: fmt.Sprint("Room ", id)},
			room.MessagePosted{MessageID: uuid(int(id)), UserID: "alice", Text: "hi"})
	}
	applyInBatches(t, e.log, roomEvents(t, e), 1000)
	rb, err := postgres.NewChatLogRebuild(e.pool, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &rebuildEnv{chatEnv: e, rb: rb}
}

// catchUp is the callback Swap and Compare get: the shadow up to the
// live checkpoint.
func (e *rebuildEnv) catchUp(ctx context.Context, live projections.Checkpoint) (domain.Position, error) {
	_, err := projections.CatchUp(ctx, projections.CatchUpOptions{Store: e.store, Projection: e.rb.Shadow()}, live.Position)
	return live.Position, err
}

func (e *rebuildEnv) build(t *testing.T) {
	t.Helper()
	if _, err := e.rb.PrepareTables(t.Context()); err != nil {
		t.Fatal(err)
	}
	head, err := e.store.HeadPosition(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.catchUp(t.Context(), projections.Checkpoint{Position: head}); err != nil {
		t.Fatal(err)
	}
}

// tables lists the tables of the public schema.
func tables(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	return pgtest.Strings(t, pool, `SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND (tablename LIKE 'rooms%' OR tablename LIKE 'chat_logs%' OR tablename = 'projection_checkpoints') ORDER BY 1`)
}

func TestApplyLocksTheCheckpointBeforeTheTables(t *testing.T) {
	t.Parallel()
	// Whatever pgx prepares first, an Apply waiting for the checkpoint row
	// holds no lock on the tables, so a swap holding the row can take them.
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe, pgx.QueryExecModeDescribeExec} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			url := pgtest.NewDatabase(t)
			cfg, err := pgxpool.ParseConfig(url)
			if err != nil {
				t.Fatal(err)
			}
			cfg.ConnConfig.DefaultQueryExecMode = mode
			pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(pool.Close)
			store := postgres.NewStore(pool, postgres.StoreConfig{})
			t.Cleanup(func() { store.Close() })
			cl, err := postgres.NewChatLog(pool, postgres.ChatLogConfig{})
			if err != nil {
				t.Fatal(err)
			}
			e := &chatEnv{pool: pool, store: store, log: cl}
			appendRoom(t, store, 1, room.RoomCreated{RoomID: 1, OwnerID: "alice", Title: "A"})
			evs := roomEvents(t, e)

			swap, err := pool.Begin(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			defer swap.Rollback(context.Background())
			if _, err := swap.Exec(t.Context(), `INSERT INTO projection_checkpoints (name, commit_pos, prepare_pos) VALUES ('chatlog', 0, 0)`); err != nil {
				t.Fatal(err)
			}
			applied := make(chan error, 1)
			go func() { applied <- cl.Apply(context.Background(), evs) }()
			// Wait until the Apply is blocked on the row.
			deadline := time.Now().Add(10 * time.Second)
			for {
				var waiting int
				if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting); err != nil {
					t.Fatal(err)
				}
				if waiting > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the Apply never waited for the checkpoint row")
				}
				time.Sleep(5 * time.Millisecond)
			}
			if _, err := swap.Exec(t.Context(), `LOCK TABLE rooms, chat_logs IN ACCESS EXCLUSIVE MODE NOWAIT`); err != nil {
				t.Errorf("the waiting Apply holds a lock on the tables: %v", err)
			}
			swap.Rollback(t.Context())
			if err := <-applied; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestSwapIsContendedWhileAReaderHoldsTheTables: a swap that cannot lock
// the tables in time changes nothing and says that trying again may work;
// once the reader is done, it goes through.
func TestSwapIsContendedWhileAReaderHoldsTheTables(t *testing.T) {
	t.Parallel()
	e := newRebuildEnv(t, postgres.ChatLogRebuildConfig{LockTimeout: 100 * time.Millisecond})
	e.build(t)
	before := dump(t, e.pool)

	reader, err := e.pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Rollback(context.Background())
	if _, err := reader.Exec(t.Context(), `SELECT count(*) FROM chat_logs`); err != nil {
		t.Fatal(err)
	}
	res, err := e.rb.Swap(t.Context(), e.catchUp)
	if !errors.Is(err, projections.ErrSwapContended) || !strings.Contains(err.Error(), "lock timeout") {
		t.Fatalf("Swap = %+v, %v; want a contended swap (lock timeout)", res, err)
	}
	if diff := cmpStrings(dump(t, e.pool), before); diff != "" {
		t.Errorf("a contended swap changed the live tables or checkpoints:\n%s", diff)
	}
	if got := tables(t, e.pool); strings.Join(got, " ") != "chat_logs chat_logs_next projection_checkpoints rooms rooms_next" {
		t.Errorf("tables after a contended swap: %v", got)
	}
	reader.Rollback(t.Context())
	if _, err := e.rb.Swap(t.Context(), e.catchUp); err != nil {
		t.Fatalf("Swap once the reader is done = %v", err)
	}
	if got := tables(t, e.pool); strings.Join(got, " ") != "chat_logs chat_logs_old projection_checkpoints rooms rooms_old" {
		t.Errorf("tables after the swap: %v", got)
	}
}

func cmpStrings(got, want []string) string {
	if strings.Join(got, "\n") == strings.Join(want, "\n") {
		return ""
	}
	return fmt.Sprintf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
}

func TestSwapRefusals(t *testing.T) {
	t.Parallel()
	t.Run("a shadow behind the live projection", func(t *testing.T) {
		t.Parallel()
		e := newRebuildEnv(t, postgres.ChatLogRebuildConfig{})
		if _, err := e.rb.PrepareTables(t.Context()); err != nil {
			t.Fatal(err)
		}
		before := dump(t, e.pool)
		_, err := e.rb.Swap(t.Context(), func(_ context.Context, live projections.Checkpoint) (domain.Position, error) {
			return live.Position, nil
		})
		if !errors.Is(err, projections.ErrShadowBehind) {
			t.Fatalf("Swap = %v, want a refusal", err)
		}
		if diff := cmpStrings(dump(t, e.pool), before); diff != "" {
			t.Errorf("a refused swap changed things:\n%s", diff)
		}
	})
	t.Run("a catch-up that fails", func(t *testing.T) {
		t.Parallel()
		e := newRebuildEnv(t, postgres.ChatLogRebuildConfig{})
		e.build(t)
		boom := errors.New("boom")
		if _, err := e.rb.Swap(t.Context(), func(context.Context, projections.Checkpoint) (domain.Position, error) { return domain.Start, boom }); !errors.Is(err, boom) {
			t.Fatalf("Swap = %v, want the catch-up's error", err)
		}
		if got := tables(t, e.pool); strings.Join(got, " ") != "chat_logs chat_logs_next projection_checkpoints rooms rooms_next" {
			t.Errorf("tables after a failed swap: %v", got)
		}
	})
	t.Run("the old copy of an earlier swap", func(t *testing.T) {
		t.Parallel()
		e := newRebuildEnv(t, postgres.ChatLogRebuildConfig{})
		e.build(t)
		if _, err := e.rb.Swap(t.Context(), e.catchUp); err != nil {
			t.Fatal(err)
		}
		e.build(t)
		if _, err := e.rb.Swap(t.Context(), e.catchUp); !errors.Is(err, projections.ErrOldCopyExists) {
			t.Fatalf("second Swap = %v, want ErrOldCopyExists", err)
		}
		if dropped, err := e.rb.DropOld(t.Context()); err != nil || !dropped {
			t.Fatalf("DropOld = %t, %v", dropped, err)
		}
		if _, err := e.rb.Swap(t.Context(), e.catchUp); err != nil {
			t.Fatalf("Swap after DropOld = %v", err)
		}
		checkMatchesFold(t, e.chatEnv, []int64{1, 2, 3})
	})
	t.Run("bad shadow names", func(t *testing.T) {
		for _, cfg := range []postgres.ChatLogConfig{{Name: "x", TableSuffix: "_old"}, {Name: "chatlog", TableSuffix: "_x"}, {Name: "chatlog_old", TableSuffix: "_x"}, {Name: "x"}} {
			if _, err := postgres.NewChatLogRebuild(nil, postgres.ChatLogRebuildConfig{Shadow: cfg}); err == nil {
				t.Errorf("shadow %+v was accepted", cfg)
			}
		}
	})
}

func TestPrepareResumesOrStartsAfresh(t *testing.T) {
	t.Parallel()
	e := newRebuildEnv(t, postgres.ChatLogRebuildConfig{})
	if resumed, err := e.rb.PrepareTables(t.Context()); err != nil || resumed {
		t.Fatalf("first Prepare = %t, %v; want a fresh shadow", resumed, err)
	}
	evs := roomEvents(t, e.chatEnv)
	if err := e.rb.Shadow().Apply(t.Context(), evs[:2]); err != nil {
		t.Fatal(err)
	}
	if resumed, err := e.rb.PrepareTables(t.Context()); err != nil || !resumed {
		t.Fatalf("second Prepare = %t, %v; want the shadow kept", resumed, err)
	}
	if cp, err := e.rb.Shadow().Checkpoint(t.Context()); err != nil || cp != evs[1].Position {
		t.Fatalf("resumed checkpoint = %s, %v; want %s", cp, err, evs[1].Position)
	}
	// A migration changed the live table: the shadow is rebuilt afresh.
	if _, err := e.pool.Exec(t.Context(), `ALTER TABLE rooms ADD COLUMN topic text NOT NULL DEFAULT ''`); err != nil {
		t.Fatal(err)
	}
	if resumed, err := e.rb.PrepareTables(t.Context()); err != nil || resumed {
		t.Fatalf("Prepare after a schema change = %t, %v; want a fresh shadow", resumed, err)
	}
	if cp, err := e.rb.Shadow().Checkpoint(t.Context()); err != nil || !cp.IsZero() {
		t.Fatalf("fresh shadow's checkpoint = %s, %v; want the start", cp, err)
	}
	var n int
	if err := e.pool.QueryRow(t.Context(), `SELECT count(*) FROM rooms_next WHERE topic = ''`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("fresh shadow: %d rows, %v; want the new column and no rows", n, err)
	}
	// A second rebuild into the same shadow is kept out.
	unlock, err := e.rb.Lock(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.rb.Lock(t.Context()); !errors.Is(err, projections.ErrRebuildRunning) {
		t.Errorf("second Lock = %v, want it refused", err)
	}
	unlock()
	unlock2, err := e.rb.Lock(t.Context())
	if err != nil {
		t.Fatalf("Lock after unlock = %v", err)
	}
	unlock2()
}

func TestCompareHoldsTheLiveProjectionAtOnePosition(t *testing.T) {
	t.Parallel()
	e := newRebuildEnv(t, postgres.ChatLogRebuildConfig{Shadow: postgres.ChatLogConfig{Name: "chatlog_check", TableSuffix: "_check"}})
	e.build(t)
	// The live projection moves on; the comparison catches the shadow up
	// to it, and no further.
	appendRoom(t, e.store, 4, room.RoomCreated{RoomID: 4, OwnerID: "bob", Title: "D"})
	applyInBatches(t, e.log, roomEvents(t, e.chatEnv), 1000)
	appendRoom(t, e.store, 5, room.RoomCreated{RoomID: 5, OwnerID: "bob", Title: "E"}) // not applied live
	settle(t, e.chatEnv)
	d, err := e.rb.Compare(t.Context(), e.catchUp)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Equal() || d.Parts[0].Live != 4 || d.Parts[0].Shadow != 4 || d.Parts[1].Live != 3 {
		t.Errorf("Compare = %+v, want 4 rooms and 3 messages on both sides", d)
	}
}
