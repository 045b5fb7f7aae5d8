package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	goredis "github.com/redis/go-redis/v9"

	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/adapters/postgres/pgtest"
	"github.com/parleychat/parley/adapters/redis/redistest"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/privacy"
	"github.com/parleychat/parley/domain/room"
	"github.com/parleychat/parley/domain/room/roomgen"
	"github.com/parleychat/parley/projections"
	"github.com/parleychat/parley/projections/projectiontest"
)

// pgEnv is a fresh database with an event store, as chatd would have it.
type pgEnv struct {
	url  string
	pool *pgxpool.Pool
	// log is the test's database's log as chatd and chatctl see it: text
	// sealed under the rooms' keys (testDataKey, the env's key table).
	log   domain.EventStore
	keys  *privacy.Keyring
	rdb   *goredis.Client // the memory's Redis
	redis string          // the memory's key prefix, this test's own
}

func newPGEnv(t *testing.T) *pgEnv {
	t.Helper()
	return newPGEnvMode(t, pgx.QueryExecModeCacheStatement)
}

// newPGEnvMode opens the pool in a pgx query execution mode.
func newPGEnvMode(t *testing.T, mode pgx.QueryExecMode) *pgEnv {
	t.Helper()
	url := pgtest.NewDatabase(t)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 8
	cfg.ConnConfig.DefaultQueryExecMode = mode
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	store := postgres.NewStore(pool, postgres.StoreConfig{})
	t.Cleanup(func() { store.Close() })
	kek, err := privacy.ParseKEK(testDataKey)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := privacy.NewKeyring(postgres.NewKeys(pool), privacy.KEKs{kek}, privacy.KeyringConfig{})
	if err != nil {
		t.Fatal(err)
	}
	rdb := redistest.Client(t)
	return &pgEnv{url: url, pool: pool, log: privacy.NewStore(store, keys), keys: keys, rdb: rdb, redis: redistest.Prefix(t, rdb)}
}

// write appends a generated history and returns what it holds.
func (e *pgEnv) write(t *testing.T, cfg roomgen.Config) roomgen.Stats {
	t.Helper()
	rooms, st := roomgen.Generate(cfg)
	if _, err := roomgen.Write(t.Context(), e.log, rooms, 4, 8, nil); err != nil {
		t.Fatal(err)
	}
	return st
}

// chatctl runs `chatctl args...` in this process against the env's
// database and returns its output.
func (e *pgEnv) chatctl(ctx context.Context, args ...string) (stdout, stderr string, err error) {
	return e.chatctlWith(ctx, nil, args...)
}

// chatctlWith is chatctl with more environment variables.
func (e *pgEnv) chatctlWith(ctx context.Context, vars map[string]string, args ...string) (stdout, stderr string, err error) {
	all := map[string]string{"PARLEY_DATABASE_URL": e.url, "PARLEY_REDIS_URL": redistest.URL(), "PARLEY_REDIS_PREFIX": e.redis}
	for k, v := range vars {
		all[k] = v
	}
	var out, errb bytes.Buffer
	err = run(ctx, args, env(all), nil, &out, &errb)
	return out.String(), errb.String(), err
}

// head waits until every event committed so far is readable and returns
// the log's head.
func (e *pgEnv) head(t *testing.T) domain.Position {
	t.Helper()
	var txid, seq int64
	err := e.pool.QueryRow(t.Context(), `SELECT txid, seq FROM events ORDER BY txid DESC, seq DESC LIMIT 1`).Scan(&txid, &seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return domain.Start
	}
	if err != nil {
		t.Fatal(err)
	}
	last := domain.Position{Commit: uint64(txid), Prepare: uint64(seq)}
	deadline := time.Now().Add(30 * time.Second)
	for {
		head, err := e.log.HeadPosition(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if !head.Less(last) {
			return head
		}
		if time.Now().After(deadline) {
			t.Fatalf("event %s never became readable", last)
		}
		time.Sleep(time.Millisecond)
	}
}

// startRunner runs the live ChatLog as chatd does, until the test ends or
// stop is called.
func (e *pgEnv) startRunner(t *testing.T) (*projections.Runner, func() error) {
	t.Helper()
	cl, err := postgres.NewChatLog(e.pool, postgres.ChatLogConfig{Keys: e.keys})
	if err != nil {
		t.Fatal(err)
	}
	r := &projections.Runner{Store: e.log, Projection: cl, MinBackoff: 10 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var (
		once sync.Once
		rerr error
	)
	stop := func() error {
		once.Do(func() { cancel(); rerr = <-done })
		return rerr
	}
	t.Cleanup(func() { stop() })
	return r, stop
}

// waitFor waits until r has applied the log up to its head now.
func (e *pgEnv) waitFor(t *testing.T, r *projections.Runner) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if err := r.WaitFor(ctx, e.head(t)); err != nil {
		t.Fatalf("wait for the live projection: %v", err)
	}
}

// dump returns the ChatLog tables with suffix, a row per line, in key
// order.
func (e *pgEnv) dump(t *testing.T, suffix string) []string {
	t.Helper()
	return pgtest.Strings(t, e.pool, fmt.Sprintf(`
		SELECT 'rooms ' || to_jsonb(r)::text FROM (SELECT * FROM rooms%[1]s ORDER BY id) r
		UNION ALL
		SELECT 'chat_logs ' || to_jsonb(c)::text FROM (SELECT * FROM chat_logs%[1]s ORDER BY room_id, seq, id) c`, suffix))
}

// reference builds the ChatLog from scratch up to the head into tables
// with suffix _ref, and returns their dump.
func (e *pgEnv) reference(t *testing.T) []string {
	t.Helper()
	rb, err := postgres.NewChatLogRebuild(e.pool, postgres.ChatLogRebuildConfig{Shadow: postgres.ChatLogConfig{Name: "chatlog_ref", TableSuffix: "_ref"}, Keys: e.keys})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rb.DropShadow(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := rb.PrepareTables(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := projections.CatchUp(t.Context(), projections.CatchUpOptions{Store: e.log, Projection: rb.Shadow(), Batch: 777}, e.head(t)); err != nil {
		t.Fatal(err)
	}
	out := e.dump(t, "_ref")
	if _, err := rb.DropShadow(t.Context()); err != nil {
		t.Fatal(err)
	}
	return out
}

func (e *pgEnv) checkpoint(t *testing.T, name string) (domain.Position, bool) {
	t.Helper()
	cps, err := postgres.ListCheckpoints(t.Context(), e.pool)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cps {
		if c.Name == name {
			return c.Position, true
		}
	}
	return domain.Start, false
}

func (e *pgEnv) tableExists(t *testing.T, name string) bool {
	t.Helper()
	var ok bool
	if err := e.pool.QueryRow(t.Context(), `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

// checkSame fails unless got and want hold the same rows.
func checkSame(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(want) == 0 {
		t.Fatalf("%s: the reference is empty", what)
	}
	if diff := cmp.Diff(got, want); diff != "" {
		if len(diff) > 4000 {
			diff = diff[:4000] + "\n..."
		}
		t.Errorf("%s: %d rows, want %d (-got +want):\n%s", what, len(got), len(want), diff)
	}
}

func TestRebuildEqualsTheLiveProjection(t *testing.T) {
	t.Parallel()
	e := newPGEnv(t)
	st := e.write(t, roomgen.Config{Rooms: 1000, Seed: 1})
	t.Logf("history: %+v", st)
	r, _ := e.startRunner(t)
	e.waitFor(t, r)
	live := e.dump(t, "")
	if want := st.Rooms + st.Questions*2; len(live) != want {
		t.Fatalf("the live ChatLog holds %d rows, want %d (rooms, questions and answers)", len(live), want)
	}

	// A dry run compares and changes nothing.
	out, errOut, err := e.chatctl(t.Context(), "projections", "rebuild", "chatlog", "--dry-run", "--batch", "500")
	if err != nil {
		t.Fatalf("dry run: %v\n%s\n%s", err, out, errOut)
	}
	t.Logf("dry run:\n%s", out)
	if !strings.Contains(out, "equals the live read model") {
		t.Errorf("dry run output does not say the rebuild is equal:\n%s", out)
	}
	if e.tableExists(t, "rooms_dryrun") || e.tableExists(t, "chat_logs_dryrun") {
		t.Error("the dry run left its tables")
	}
	if _, ok := e.checkpoint(t, "chatlog_dryrun"); ok {
		t.Error("the dry run left its checkpoint")
	}
	checkSame(t, "live tables after the dry run", e.dump(t, ""), live)

	// The rebuild swaps in identical rows; the old copy stays until dropped.
	liveCP, _ := e.checkpoint(t, "chatlog")
	out, errOut, err = e.chatctl(t.Context(), "projections", "rebuild", "--batch=300", "chatlog")
	if err != nil {
		t.Fatalf("rebuild: %v\n%s\n%s", err, out, errOut)
	}
	t.Logf("rebuild:\n%s%s", out, errOut)
	checkSame(t, "live tables after the rebuild", e.dump(t, ""), live)
	checkSame(t, "old copy", e.dump(t, "_old"), live)
	if cp, _ := e.checkpoint(t, "chatlog"); cp != liveCP {
		t.Errorf("live checkpoint after the swap = %s, want %s", cp, liveCP)
	}
	if _, ok := e.checkpoint(t, "chatlog_next"); ok {
		t.Error("the shadow's checkpoint is still there after the swap")
	}
	if cp, ok := e.checkpoint(t, "chatlog_old"); !ok || cp != liveCP {
		t.Errorf("old checkpoint = %s, %t; want %s", cp, ok, liveCP)
	}
	// The swapped tables have the live index names and work for chatd.
	idx := pgtest.Strings(t, e.pool, `SELECT indexname FROM pg_indexes WHERE tablename IN ('rooms', 'chat_logs') ORDER BY 1`)
	if diff := cmp.Diff(idx, []string{"chat_logs_pkey", "chat_logs_room_seq", "chat_logs_streaming", "rooms_owner_created", "rooms_pkey"}); diff != "" {
		t.Errorf("indexes of the live tables after the swap (-got +want):\n%s", diff)
	}

	out, _, err = e.chatctl(t.Context(), "projections", "status")
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	if !strings.Contains(out, "chatlog_old") || !strings.Contains(out, "caught up") {
		t.Errorf("status does not show the live projection caught up and the old copy:\n%s", out)
	}
	// A second rebuild refuses to run over the old copy...
	if _, _, err := e.chatctl(t.Context(), "projections", "rebuild", "chatlog"); err == nil || !strings.Contains(err.Error(), "or pass --drop-old") {
		t.Errorf("a rebuild over the old copy = %v, want a refusal naming --drop-old", err)
	}
	// ...unless told to drop it, and then drops the new old copy too.
	if out, errOut, err := e.chatctl(t.Context(), "projections", "rebuild", "chatlog", "--drop-old"); err != nil {
		t.Fatalf("rebuild --drop-old: %v\n%s\n%s", err, out, errOut)
	}
	if e.tableExists(t, "rooms_old") || e.tableExists(t, "chat_logs_old") {
		t.Error("rebuild --drop-old kept the old tables")
	}
	checkSame(t, "live tables after the second rebuild", e.dump(t, ""), live)
	if out, _, err := e.chatctl(t.Context(), "projections", "drop-old", "chatlog"); err != nil || !strings.Contains(out, "no old copy") {
		t.Errorf("drop-old with nothing to drop = %q, %v", out, err)
	}
}

func TestDryRunReportsDifferences(t *testing.T) {
	t.Parallel()
	e := newPGEnv(t)
	e.write(t, roomgen.Config{Rooms: 60, Seed: 2})
	r, stop := e.startRunner(t)
	e.waitFor(t, r)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// Damage the live read model: one message changed, one room and one
	// message gone, one message made up.
	for _, q := range []string{
		`UPDATE chat_logs SET text = text || ' (edited)' WHERE (room_id, id) = (SELECT room_id, id FROM chat_logs WHERE room_id = 7 ORDER BY seq LIMIT 1)`,
		`DELETE FROM rooms WHERE id = 9`,
		`DELETE FROM chat_logs WHERE (room_id, id) = (SELECT room_id, id FROM chat_logs WHERE room_id = 11 ORDER BY seq LIMIT 1)`,
		`INSERT INTO chat_logs (room_id, id, role, text, status, created_at, updated_at, version, seq) VALUES (12, gen_random_uuid(), 'user', 'made up', 'complete', now(), now(), 99, 99)`,
	} {
		if tag, err := e.pool.Exec(t.Context(), q); err != nil || tag.RowsAffected() != 1 {
			t.Fatalf("%s: %v, %d rows", q, err, tag.RowsAffected())
		}
	}
	before := e.dump(t, "")
	out, _, err := e.chatctl(t.Context(), "projections", "rebuild", "chatlog", "--dry-run")
	t.Logf("dry run:\n%s", out)
	var ee *exitError
	if !errors.As(err, &ee) || ee.Code != 1 {
		t.Fatalf("dry run = %v, want exit status 1", err)
	}
	lines := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			lines[f[0]] = strings.Join(f, " ")
		}
	}
	// rooms: one missing in live is one extra in the rebuild.
	if !strings.HasPrefix(lines["rooms"], "rooms 59 60 0 0 1 room 9") {
		t.Errorf("rooms line = %q, want 59 live, 60 rebuilt, 1 extra (room 9)", lines["rooms"])
	}
	if !strings.Contains(lines["messages"], " 1 1 1 room 7, room 11, room 12") {
		t.Errorf("messages line = %q, want 1 differing, 1 missing, 1 extra in rooms 7, 11, 12", lines["messages"])
	}
	checkSame(t, "live tables after the dry run", e.dump(t, ""), before)
}

func TestProjectionsArguments(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args     []string
		wantCode int
		want     string
	}{
		{[]string{"projections"}, 2, "say which command"},
		{[]string{"projections", "rebuild"}, 2, "name the projection"},
		{[]string{"projections", "rebuild", "chatlogs"}, 2, `unknown projection "chatlogs"`},
		{[]string{"projections", "rebuild", "chatlog", "--dry-run", "--drop-old"}, 2, "cannot --drop-old"},
		{[]string{"projections", "rebuild", "chatlog", "--batch", "0"}, 2, "must be positive"},
		{[]string{"projections", "status", "chatlog"}, 2, "takes no arguments"},
		{[]string{"projections", "replay"}, 2, `unknown command "replay"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			err := run(t.Context(), tc.args, env(nil), nil, &out, &errb)
			var ee *exitError
			if !errors.As(err, &ee) || ee.Code != tc.wantCode || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want exit status %d and %q", err, tc.wantCode, tc.want)
			}
		})
	}
}

func TestStatusOfAFreshDatabase(t *testing.T) {
	t.Parallel()
	e := newPGEnv(t)
	out, _, err := e.chatctl(t.Context(), "projections", "status")
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	if !strings.Contains(out, "chatlog") || !strings.Contains(out, "never run") {
		t.Errorf("status of a fresh database:\n%s", out)
	}
	// A pending migration is reported, not tripped over.
	if _, err := e.pool.Exec(t.Context(), `DELETE FROM schema_migrations WHERE version = 4`); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.chatctl(t.Context(), "projections", "status"); err == nil || !strings.Contains(err.Error(), "chatctl migrate up") {
		t.Errorf("status with a pending migration = %v, want advice to migrate", err)
	}
}

// TestRebuildUnderALiveRunner swaps while chatd's ChatLog runner applies
// new appends and chatd's queries read the live tables, with chatd's pool
// in each pgx query execution mode: the renamed tables must not trip
// cached prepared statements or descriptions, and the runner's and the
// swap's locks must not deadlock. (The ChatLog cannot apply in the exec
// and simple protocol modes at all, as pgx cannot encode its uuid arrays
// without their type: there only the readers use them.)
func TestRebuildUnderALiveRunner(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ runner, reader pgx.QueryExecMode }{
		{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheStatement},
		{pgx.QueryExecModeCacheDescribe, pgx.QueryExecModeCacheDescribe},
		{pgx.QueryExecModeDescribeExec, pgx.QueryExecModeDescribeExec},
		{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeExec},
		{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol},
	} {
		t.Run(fmt.Sprintf("runner %s, reader %s", tc.runner, tc.reader), func(t *testing.T) {
			t.Parallel()
			e := newPGEnv(t)
			// chatd's pools for its ChatLog runner and its queries.
			chatdPool := func(mode pgx.QueryExecMode) *pgxpool.Pool {
				cfg, err := pgxpool.ParseConfig(e.url)
				if err != nil {
					t.Fatal(err)
				}
				cfg.ConnConfig.DefaultQueryExecMode = mode
				cfg.MaxConns = 4
				pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(pool.Close)
				return pool
			}
			cl, err := postgres.NewChatLog(chatdPool(tc.runner), postgres.ChatLogConfig{Keys: e.keys})
			if err != nil {
				t.Fatal(err)
			}
			reader, err := postgres.NewChatLog(chatdPool(tc.reader), postgres.ChatLogConfig{Keys: e.keys})
			if err != nil {
				t.Fatal(err)
			}
			e.write(t, roomgen.Config{Rooms: 300, Seed: 10})
			r := &projections.Runner{Store: e.log, Projection: cl, MinBackoff: 10 * time.Millisecond}
			rctx, stopRunner := context.WithCancel(context.Background())
			runErr := make(chan error, 1)
			go func() { runErr <- r.Run(rctx) }()
			defer func() { stopRunner(); <-runErr }()
			e.waitFor(t, r)

			// Writers keep appending new rooms; readers keep querying, as
			// chatd's users would.
			w := projectiontest.StartWriters(t, e.log, 100_000, 1000)
			ctx, stopReaders := context.WithCancel(t.Context())
			var (
				wg       sync.WaitGroup
				mu       sync.Mutex
				readErrs []error
				reads    int
			)
			wg.Go(func() {
				for i := int64(0); ctx.Err() == nil; i++ {
					id := 1 + i%300
					_, _, err1 := reader.History(ctx, id)
					_, err2 := reader.Messages(ctx, id, 0, 5)
					_, _, err3 := reader.Room(ctx, id)
					_, err4 := reader.RoomsOf(ctx, fmt.Sprintf("user-%d", 1+i%60), 10)
					mu.Lock()
					reads++
					for _, err := range []error{err1, err2, err3, err4} {
						if err != nil && ctx.Err() == nil {
							readErrs = append(readErrs, err)
						}
					}
					mu.Unlock()
				}
			})
			time.Sleep(200 * time.Millisecond)
			before := e.head(t)
			out, errOut, err := e.chatctl(t.Context(), "projections", "rebuild", "chatlog", "--batch", "400")
			if err != nil {
				stopReaders()
				wg.Wait()
				t.Fatalf("rebuild: %v\n%s\n%s", err, out, errOut)
			}
			swappedAt := e.head(t)
			time.Sleep(500 * time.Millisecond) // more appends on the swapped tables
			// The writers stop, and every append they started has
			// returned: the log's head is final when the runner is
			// compared with it.
			if err := w.Stop(); err != nil {
				t.Fatal(err)
			}
			stopReaders()
			wg.Wait()
			wctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			if err := r.WaitFor(wctx, e.head(t)); err != nil {
				st, _ := r.Status(t.Context())
				t.Fatalf("the live runner did not catch up after the swap: %v; status %+v", err, st)
			}

			if !before.Less(swappedAt) {
				t.Errorf("nothing was appended during the rebuild (head %s before, %s after)", before, swappedAt)
			}
			if after := e.head(t); !swappedAt.Less(after) {
				t.Errorf("nothing was appended after the swap (head %s)", after)
			}
			st, err := r.Status(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if st.State != projections.StateRunning || st.LastError != "" || !st.CaughtUp {
				t.Errorf("live runner after the swap: %+v, want running, caught up, no error", st)
			}
			mu.Lock()
			t.Logf("%d rounds of reads, %d errors; rebuild output:\n%s", reads, len(readErrs), out)
			for i, err := range readErrs {
				if i < 5 {
					t.Errorf("chatd's query failed: %v", err)
				}
			}
			mu.Unlock()
			checkSame(t, "live tables after the swap and later appends", e.dump(t, ""), e.reference(t))
			if !e.tableExists(t, "rooms_old") {
				t.Error("the old copy is gone")
			}
		})
	}
}

// referenceUpTo builds the ChatLog from scratch up to upTo into tables
// with suffix _ref and returns their dump.
func (e *pgEnv) referenceUpTo(t *testing.T, upTo domain.Position) []string {
	t.Helper()
	rb, err := postgres.NewChatLogRebuild(e.pool, postgres.ChatLogRebuildConfig{Shadow: postgres.ChatLogConfig{Name: "chatlog_ref", TableSuffix: "_ref"}, Keys: e.keys})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rb.PrepareTables(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer rb.DropShadow(context.Background())
	if _, err := projections.CatchUp(t.Context(), projections.CatchUpOptions{Store: e.log, Projection: rb.Shadow()}, upTo); err != nil {
		t.Fatal(err)
	}
	return e.dump(t, "_ref")
}

func TestAnUndecodableEventStopsTheProjection(t *testing.T) {
	t.Parallel()
	e := newPGEnv(t)
	e.write(t, roomgen.Config{Rooms: 40, Seed: 31})
	// JSON, but not a MessagePosted: message_id is a number.
	id, err := domain.NewUUID(rand.NewChaCha8([32]byte{1}))
	if err != nil {
		t.Fatal(err)
	}
	bad, err := e.log.Append(t.Context(), room.Stream(7), domain.StreamExists(),
		domain.EventData{ID: id, Type: room.TypeMessagePosted, Data: []byte(`{"message_id": 5, "text": "hi"}`)})
	if err != nil {
		t.Fatal(err)
	}
	e.write(t, roomgen.Config{Rooms: 40, FirstRoom: 1000, Seed: 32})
	e.head(t)

	_, errOut, err := e.chatctl(t.Context(), "projections", "run", "chatlog", "--batch", "100")
	var ee *projections.EventError
	if !errors.As(err, &ee) || ee.Position != bad.Position || ee.Stream != "room-7" {
		t.Fatalf("projections run = %v, want the EventError of room-7 at %s\n%s", err, bad.Position, errOut)
	}
	if !strings.Contains(err.Error(), bad.Position.String()) {
		t.Errorf("error %q does not name the position %s", err, bad.Position)
	}
	// Nothing of the failed batch is applied: the tables are exactly the
	// fold of the log up to the checkpoint, which is before the bad event.
	cp, _ := e.checkpoint(t, "chatlog")
	if !cp.Less(bad.Position) || cp.IsZero() {
		t.Fatalf("checkpoint %s, want one before the bad event at %s", cp, bad.Position)
	}
	checkSame(t, "live tables after the stop", e.dump(t, ""), e.referenceUpTo(t, cp))

	out, _, err := e.chatctl(t.Context(), "projections", "status")
	t.Logf("status:\n%s", out)
	var xe *exitError
	if !errors.As(err, &xe) || xe.Code != 1 {
		t.Errorf("status = %v, want exit status 1", err)
	}
	want := "chatlog: stopped at position " + bad.Position.String() + ": "
	if !strings.Contains(out, "STOPPED at position "+bad.Position.String()) || !strings.Contains(out, want) || !strings.Contains(out, "room-7@") {
		t.Errorf("status does not say where and why chatlog stopped (%q):\n%s", want, out)
	}

	// A rebuild stops on it too, and changes nothing live.
	live := e.dump(t, "")
	_, _, err = e.chatctl(t.Context(), "projections", "rebuild", "chatlog")
	if !errors.As(err, &ee) || ee.Position != bad.Position {
		t.Fatalf("rebuild = %v, want the EventError at %s", err, bad.Position)
	}
	checkSame(t, "live tables after the failed rebuild", e.dump(t, ""), live)
	out, _, _ = e.chatctl(t.Context(), "projections", "status")
	if !strings.Contains(out, "chatlog_next: stopped at position "+bad.Position.String()) {
		t.Errorf("status does not show the rebuild stopped:\n%s", out)
	}
}

func TestWithMinConns(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://u:p@h:5432/db?sslmode=disable", "postgres://u:p@h:5432/db?pool_max_conns=8&sslmode=disable"},
		{"postgres://h/db?pool_max_conns=3", "postgres://h/db?pool_max_conns=3"},
	} {
		if got := withMinConns(tc.in); got != tc.want {
			t.Errorf("withMinConns(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
