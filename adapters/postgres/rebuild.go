package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/domain"
)

// The ChatLog's rebuild, and the protocol of its swap.
//
// A rebuild runs the live ChatLog's code (ChatLog.Apply) from position
// zero into shadow tables, rooms_next and chat_logs_next (created LIKE the
// live ones INCLUDING ALL), checkpointed as "chatlog_next". An interrupted
// rebuild leaves them, and the next one resumes from their checkpoint.
// Once the shadow has caught up with the log, Swap exchanges it with the
// live tables in one transaction, while chatd's own ChatLog runner keeps
// applying new events to whatever tables are live:
//
//  1. SET LOCAL lock_timeout (ChatLogRebuildConfig.LockTimeout, 2s).
//  2. Lock the live checkpoint row ("chatlog") and read it: L. The live
//     runner's Apply takes this row lock first, so from here on no live
//     batch can write; one in flight has committed (or we would still be
//     waiting). Apply takes it in a statement of its own, before any
//     statement naming a table: pgx may parse a batch's statements before
//     running them (describe modes, statements not cached yet), and
//     parsing locks the tables named. So both sides lock the row, then
//     the tables, and cannot deadlock.
//  3. Catch the shadow up to exactly L, in other sessions (the catchUp
//     callback): every event the live tables hold, the shadow then holds.
//  4. Lock the shadow's checkpoint row and read it: S, at or after L.
//  5. LOCK TABLE the four tables ACCESS EXCLUSIVE: wait for readers of
//     the live tables (chatd's queries) to finish; readers arriving now
//     queue behind us, for at most the lock timeout.
//  6. Rename the live tables and their indexes to *_old, the shadow's to
//     the live names; move the checkpoints: "chatlog_old" gets L,
//     "chatlog" gets S (updating the row in place, not replacing it),
//     "chatlog_next" goes.
//  7. COMMIT. A lock timeout (or a deadlock) at any step rolls everything
//     back; Swap tries again (ChatLogRebuildConfig.Attempts).
//
// What the live runner in chatd sees:
//
//   - Its blocked Apply proceeds after the commit, against the renamed
//     tables: ChatLog's statements name the tables, and Postgres resolves
//     names when it (re)plans. pgx's default mode caches prepared
//     statements by SQL text; a prepared statement whose table was renamed
//     is invalidated by the rename, and Postgres re-analyses it from its
//     text at the next execution, so it finds the new "rooms". That works
//     because the shadow has the same columns (LIKE): a statement whose
//     result columns changed would fail with "cached plan must not change
//     result type" and pgx would have to re-prepare. pgx's describe modes
//     prepare unnamed statements each time and its exec and simple
//     protocol modes prepare nothing, so they resolve names afresh anyway.
//     The tests swap under a live runner and readers in each mode.
//   - The checkpoint row it locks is the same row, now holding S. Apply
//     skips events at or before the row's checkpoint and at or below each
//     row's version, so the events between L and S that the runner has
//     not seen yet are not applied twice, and the events after S are
//     applied on top of the shadow's rows. Nothing between L and S is
//     missed, as S >= L and the shadow holds all of them. The runner's own
//     idea of its checkpoint stays at L until its subscription passes S.
//
// The cost: for the few milliseconds of the renames, and for the catch-up
// from the shadow's position to L (small, as the shadow has just caught
// up with the log), the live ChatLog stops applying and its readers wait.
// The swap transaction holds a transaction id (it locks a row) but no lock
// on the events table, so the event store's global readers pass it (see
// visibleBoundSQL): subscriptions to the log do not pause.
//
// Not carried over by the swap: triggers, grants and views on the live
// tables (LIKE copies columns, defaults, constraints and indexes; a view
// would follow the old table). The ChatLog's tables have none.
//
// Drop the old copy with DropOld once the new tables have proven good; a
// further swap refuses to run while it exists.

// Defaults of ChatLogRebuildConfig.
const (
	DefaultShadowName        = "chatlog_next"
	DefaultShadowTableSuffix = "_next"
	DefaultSwapLockTimeout   = 2 * time.Second
	DefaultSwapAttempts      = 5
	// DefaultRebuildBatch is the batch a rebuild reads and applies at
	// once: large batches fold more of an answer's chunks into one row
	// write and pay fewer round trips per event (`BENCH=rebuild make
	// bench` measures it; 1,000 is less than half as fast).
	DefaultRebuildBatch = 10000
)

// oldSuffix names the previous live tables after a swap; oldName their
// checkpoint.
const (
	oldSuffix = "_old"
	oldName   = DefaultChatLogName + oldSuffix
)

// chatLogTables are the ChatLog's tables, with their keys and the column
// naming the room of a row.
var chatLogTables = []struct {
	name string
	keys []string
	room string
}{
	{"rooms", []string{"id"}, "id"},
	{"chat_logs", []string{"room_id", "id"}, "room_id"},
}

// ChatLogRebuildConfig configures a ChatLogRebuild. The zero value
// rebuilds the live ChatLog into "chatlog_next".
type ChatLogRebuildConfig struct {
	// Shadow names the shadow tables and checkpoint. Default
	// {Name: DefaultShadowName, TableSuffix: DefaultShadowTableSuffix}.
	// Its suffix must not be empty or "_old".
	Shadow ChatLogConfig
	// LockTimeout bounds each wait for a lock in Swap and Compare, so
	// that chatd's readers never queue behind the swap for longer.
	// Default DefaultSwapLockTimeout.
	LockTimeout time.Duration
	// Attempts is how often Swap tries when a lock is not granted in time.
	// Default DefaultSwapAttempts.
	Attempts int
	// Logger receives retried swaps; nil discards them.
	Logger *slog.Logger
}

// ChatLogRebuild rebuilds the live ChatLog (tables rooms and chat_logs,
// checkpoint "chatlog") in shadow tables and swaps them in; see the
// protocol above.
type ChatLogRebuild struct {
	pool   *pgxpool.Pool
	cfg    ChatLogRebuildConfig
	shadow *ChatLog
	log    *slog.Logger
}

// NewChatLogRebuild returns the rebuild of the live ChatLog over a
// migrated database. It changes nothing until Prepare.
func NewChatLogRebuild(pool *pgxpool.Pool, cfg ChatLogRebuildConfig) (*ChatLogRebuild, error) {
	if cfg.Shadow == (ChatLogConfig{}) {
		cfg.Shadow = ChatLogConfig{Name: DefaultShadowName, TableSuffix: DefaultShadowTableSuffix}
	}
	switch {
	case cfg.Shadow.TableSuffix == "" || cfg.Shadow.TableSuffix == oldSuffix:
		return nil, fmt.Errorf("postgres: chat log rebuild: shadow table suffix %q would overwrite the live or old tables; use e.g. %q", cfg.Shadow.TableSuffix, DefaultShadowTableSuffix)
	case cfg.Shadow.Name == "" || cfg.Shadow.Name == DefaultChatLogName || cfg.Shadow.Name == oldName:
		return nil, fmt.Errorf("postgres: chat log rebuild: shadow name %q is the live or old projection's; use e.g. %q", cfg.Shadow.Name, DefaultShadowName)
	}
	if cfg.LockTimeout <= 0 {
		cfg.LockTimeout = DefaultSwapLockTimeout
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = DefaultSwapAttempts
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	shadow, err := NewChatLog(pool, cfg.Shadow)
	if err != nil {
		return nil, err
	}
	return &ChatLogRebuild{pool: pool, cfg: cfg, shadow: shadow, log: log.With("projection", DefaultChatLogName, "shadow", cfg.Shadow.Name)}, nil
}

// Shadow is the ChatLog writing the shadow tables: the projection a
// rebuild runs.
func (r *ChatLogRebuild) Shadow() *ChatLog { return r.shadow }

func (r *ChatLogRebuild) shadowTable(t string) string { return t + r.cfg.Shadow.TableSuffix }

// Lock takes the rebuild's advisory lock on a connection of its own, so
// that two rebuilds into the same shadow never run at once; unlock
// releases it. It fails at once when another process holds it.
func (r *ChatLogRebuild) Lock(ctx context.Context) (unlock func(), err error) {
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: lock the rebuild of %s: %w", r.cfg.Shadow.Name, err)
	}
	h := fnv.New64a()
	h.Write([]byte("parley rebuild " + r.cfg.Shadow.Name))
	key := int64(h.Sum64())
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&ok); err != nil {
		conn.Release()
		return nil, fmt.Errorf("postgres: lock the rebuild of %s: %w", r.cfg.Shadow.Name, err)
	}
	if !ok {
		conn.Release()
		return nil, fmt.Errorf("postgres: another rebuild into %s is running; wait for it or stop it", r.cfg.Shadow.Name)
	}
	return func() {
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, `SELECT pg_advisory_unlock($1)`, key); err != nil {
			conn.Conn().Close(uctx) // ending the session releases the lock
		}
		conn.Release()
	}, nil
}

// Prepare creates the shadow tables, empty, with a fresh checkpoint, or
// keeps those an interrupted rebuild left when they still have the live
// tables' shape; resumed reports which. The shadow's checkpoint is
// dropped whenever its tables are created, so that the two never
// disagree.
func (r *ChatLogRebuild) Prepare(ctx context.Context) (resumed bool, err error) {
	err = pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		resumed = true
		for _, t := range chatLogTables {
			same, err := sameShape(ctx, tx, t.name, r.shadowTable(t.name))
			if err != nil {
				return err
			}
			resumed = resumed && same
		}
		if resumed {
			return nil
		}
		for _, t := range chatLogTables {
			live, shadow := ident(t.name), ident(r.shadowTable(t.name))
			if _, err := tx.Exec(ctx, `DROP TABLE IF EXISTS `+shadow); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `CREATE TABLE `+shadow+` (LIKE `+live+` INCLUDING ALL)`); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `DELETE FROM projection_checkpoints WHERE name = $1`, r.cfg.Shadow.Name)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("postgres: prepare the shadow tables of %s: %w", r.cfg.Shadow.Name, err)
	}
	return resumed, nil
}

// sameShape reports whether table b exists and has the columns and
// indexes of table a.
func sameShape(ctx context.Context, q pgx.Tx, a, b string) (bool, error) {
	var exists bool
	if err := q.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, b).Scan(&exists); err != nil || !exists {
		return false, err
	}
	cols := `SELECT coalesce(string_agg(attname || ' ' || format_type(atttypid, atttypmod) || CASE WHEN attnotnull THEN ' not null' ELSE '' END
			|| coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), ''), ', ' ORDER BY attnum), '')
		FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped`
	var ca, cb string
	if err := q.QueryRow(ctx, cols, a).Scan(&ca); err != nil {
		return false, err
	}
	if err := q.QueryRow(ctx, cols, b).Scan(&cb); err != nil {
		return false, err
	}
	if ca != cb {
		return false, nil
	}
	ia, err := indexes(ctx, q, a)
	if err != nil {
		return false, err
	}
	ib, err := indexes(ctx, q, b)
	if err != nil {
		return false, err
	}
	if len(ia) != len(ib) {
		return false, nil
	}
	for k := range ia {
		if _, ok := ib[k]; !ok {
			return false, nil
		}
	}
	return true, nil
}

// indexes returns table's indexes by what they index (uniqueness, method,
// columns, predicate), which LIKE ... INCLUDING ALL copies under other
// names.
func indexes(ctx context.Context, q pgx.Tx, table string) (map[string]string, error) {
	rows, err := q.Query(ctx, `SELECT c.relname, i.indisprimary::text || ' ' || i.indisunique::text || ' ' ||
			substring(pg_get_indexdef(i.indexrelid) FROM ' USING .*$')
		FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
		WHERE i.indrelid = $1::regclass`, table)
	if err != nil {
		return nil, fmt.Errorf("list the indexes of %s: %w", table, err)
	}
	out := map[string]string{}
	for rows.Next() {
		var name, key string
		if err := rows.Scan(&name, &key); err != nil {
			return nil, fmt.Errorf("list the indexes of %s: %w", table, err)
		}
		out[key] = name
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list the indexes of %s: %w", table, err)
	}
	return out, nil
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// Compare reports how the shadow tables differ from the live ones, both
// at the live projection's checkpoint: it locks the live checkpoint (as
// Swap does), has catchUp bring the shadow to exactly that position,
// takes a snapshot of both, releases the live projection and compares in
// the snapshot. catchUp must apply to Shadow() every event up to the
// position it is given and none after it.
func (r *ChatLogRebuild) Compare(ctx context.Context, catchUp func(ctx context.Context, upTo domain.Position) error) (ChatLogDiff, error) {
	var diff ChatLogDiff
	lock, err := r.pool.Begin(ctx)
	if err != nil {
		return diff, fmt.Errorf("postgres: compare %s with the live chat log: %w", r.cfg.Shadow.Name, err)
	}
	defer lock.Rollback(context.WithoutCancel(ctx))
	if err := r.setLockTimeout(ctx, lock); err != nil {
		return diff, err
	}
	live, err := lockCheckpointRow(ctx, lock, DefaultChatLogName)
	if err != nil {
		return diff, fmt.Errorf("postgres: compare with the live chat log: lock its checkpoint: %w", err)
	}
	if err := catchUp(ctx, live); err != nil {
		return diff, fmt.Errorf("postgres: compare with the live chat log: catch %s up to %s: %w", r.cfg.Shadow.Name, live, err)
	}
	snap, err := r.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return diff, fmt.Errorf("postgres: compare with the live chat log: %w", err)
	}
	defer snap.Rollback(context.WithoutCancel(ctx))
	var snapLive domain.Position
	if snapLive, err = readCheckpoint(ctx, snap, DefaultChatLogName); err != nil { // takes the snapshot
		return diff, err
	}
	if diff.Shadow, err = readCheckpoint(ctx, snap, r.cfg.Shadow.Name); err != nil {
		return diff, err
	}
	if err := lock.Commit(ctx); err != nil { // the live projection goes on
		return diff, fmt.Errorf("postgres: compare with the live chat log: %w", err)
	}
	diff.Live = live
	if snapLive != live {
		// Only when it had no checkpoint row to lock: it has just started.
		return diff, fmt.Errorf("postgres: compare with the live chat log: its checkpoint moved from %s to %s; try again", live, snapLive)
	}
	for i, t := range chatLogTables {
		td, err := compareTable(ctx, snap, t.name, r.shadowTable(t.name), t.keys, t.room)
		if err != nil {
			return diff, fmt.Errorf("postgres: compare %s with %s: %w", r.shadowTable(t.name), t.name, err)
		}
		if i == 0 {
			diff.Rooms = td
		} else {
			diff.Messages = td
		}
	}
	return diff, nil
}

// ChatLogDiff is how a rebuilt ChatLog differs from the live one.
type ChatLogDiff struct {
	// Live and Shadow are the checkpoints compared.
	Live, Shadow domain.Position
	// Rooms compares the rooms tables, Messages the chat_logs tables.
	Rooms, Messages TableDiff
}

// Equal reports whether the two hold the same rows at the same position.
func (d ChatLogDiff) Equal() bool {
	return d.Live == d.Shadow && d.Rooms.Equal() && d.Messages.Equal()
}

// TableDiff compares a live table with its rebuilt copy, row by key.
type TableDiff struct {
	// Live and Shadow count the rows of each.
	Live, Shadow int64
	// Differing counts keys in both whose rows differ; Missing keys only
	// live has (the rebuild lacks them); Extra keys only the rebuild has.
	Differing, Missing, Extra int64
	// Rooms lists up to 10 rooms with a difference, smallest first.
	Rooms []int64
}

// Equal reports whether there is no difference.
func (d TableDiff) Equal() bool { return d.Differing == 0 && d.Missing == 0 && d.Extra == 0 }

// compareTable counts the differences between live and shadow in one
// statement, joining on keys and comparing every column.
func compareTable(ctx context.Context, tx pgx.Tx, live, shadow string, keys []string, roomCol string) (TableDiff, error) {
	var cols []string
	rows, err := tx.Query(ctx, `SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, live)
	if err != nil {
		return TableDiff{}, err
	}
	if cols, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return TableDiff{}, err
	}
	var on, differ []string
	for _, k := range keys {
		on = append(on, "l."+ident(k)+" = s."+ident(k))
	}
	for _, c := range cols {
		differ = append(differ, "l."+ident(c)+" IS DISTINCT FROM s."+ident(c))
	}
	k0, room := ident(keys[0]), ident(roomCol)
	missing, extra := "s."+k0+" IS NULL", "l."+k0+" IS NULL"
	differs := "(" + strings.Join(differ, " OR ") + ")"
	q := fmt.Sprintf(`SELECT count(l.%[1]s), count(s.%[1]s),
	count(*) FILTER (WHERE l.%[1]s IS NOT NULL AND s.%[1]s IS NOT NULL AND %[2]s),
	count(*) FILTER (WHERE %[3]s),
	count(*) FILTER (WHERE %[4]s),
	coalesce((array_agg(DISTINCT coalesce(l.%[5]s, s.%[5]s)) FILTER (WHERE %[2]s))[1:10], '{}')
FROM %[6]s l FULL JOIN %[7]s s ON %[8]s`,
		k0, differs, missing, extra, room, ident(live), ident(shadow), strings.Join(on, " AND "))
	var d TableDiff
	err = tx.QueryRow(ctx, q).Scan(&d.Live, &d.Shadow, &d.Differing, &d.Missing, &d.Extra, &d.Rooms)
	return d, err
}

// SwapResult says what a Swap did.
type SwapResult struct {
	// Live is where the live projection was (now the old copy's
	// checkpoint); Shadow where the rebuilt one was (now the live one's).
	Live, Shadow domain.Position
	// Attempts is how many tries it took.
	Attempts int
}

// ErrOldCopyExists is Swap's error while the old copy of an earlier swap
// is still there.
var ErrOldCopyExists = errors.New("the old copy of the chat log from an earlier rebuild still exists (tables rooms_old, chat_logs_old); drop it first (chatctl projections drop-old chatlog)")

// Swap makes the shadow tables live in one transaction, following the
// protocol described at the top of this file; catchUp must apply to
// Shadow() every event up to the position it is given. When a lock is not
// granted within the lock timeout, everything is rolled back and Swap
// tries again, up to the configured attempts.
func (r *ChatLogRebuild) Swap(ctx context.Context, catchUp func(ctx context.Context, upTo domain.Position) error) (SwapResult, error) {
	old, err := r.OldExists(ctx)
	if err != nil {
		return SwapResult{}, err
	}
	if old {
		return SwapResult{}, ErrOldCopyExists
	}
	// Fresh statistics, so that chatd's first queries on the new tables
	// get good plans.
	for _, t := range chatLogTables {
		if _, err := r.pool.Exec(ctx, `ANALYZE `+ident(r.shadowTable(t.name))); err != nil {
			return SwapResult{}, fmt.Errorf("postgres: swap: analyze %s: %w", r.shadowTable(t.name), err)
		}
	}
	for attempt := 1; ; attempt++ {
		res, err := r.swapOnce(ctx, catchUp)
		res.Attempts = attempt
		if err == nil || !retryableSwapError(err) || attempt >= r.cfg.Attempts || ctx.Err() != nil {
			if err != nil {
				err = fmt.Errorf("postgres: swap %s into the live chat log (attempt %d of %d): %w", r.cfg.Shadow.Name, attempt, r.cfg.Attempts, err)
			}
			return res, err
		}
		wait := time.Duration(attempt) * 200 * time.Millisecond
		r.log.Warn("swap: a lock was not granted in time; retrying", "error", err, "attempt", attempt, "retry_in", wait)
		if err := sleep(ctx, wait); err != nil {
			return res, err
		}
	}
}

// retryableSwapError reports a lock not granted in time (55P03) or a
// deadlock (40P01, which a runner that locks the tables before its
// checkpoint row would cause): trying again may work.
func retryableSwapError(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "55P03" || pgErr.Code == "40P01")
}

func (r *ChatLogRebuild) setLockTimeout(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, fmt.Sprintf(`SET LOCAL lock_timeout = %d`, r.cfg.LockTimeout.Milliseconds()))
	return err
}

// lockCheckpointRow locks projection name's checkpoint row, if it has one,
// and returns its position (domain.Start when it has none).
func lockCheckpointRow(ctx context.Context, tx pgx.Tx, name string) (domain.Position, error) {
	var commit, prepare int64
	err := tx.QueryRow(ctx, `SELECT commit_pos, prepare_pos FROM projection_checkpoints WHERE name = $1 FOR UPDATE`, name).Scan(&commit, &prepare)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return domain.Start, nil
	case err != nil:
		return domain.Position{}, err
	}
	return domain.Position{Commit: uint64(commit), Prepare: uint64(prepare)}, nil
}

func (r *ChatLogRebuild) swapOnce(ctx context.Context, catchUp func(ctx context.Context, upTo domain.Position) error) (SwapResult, error) {
	var res SwapResult
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		return res, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := r.setLockTimeout(ctx, tx); err != nil {
		return res, err
	}
	// 2. Stop the live projection: its Apply locks this row first. The
	// row is created when the live projection has never run, so that a
	// runner starting now waits too.
	res.Live, err = lockCheckpoint(ctx, tx, DefaultChatLogName)
	if err != nil {
		return res, fmt.Errorf("lock the live checkpoint: %w", err)
	}
	// 3. The shadow gets everything the live tables have.
	if err := catchUp(ctx, res.Live); err != nil {
		return res, fmt.Errorf("catch %s up to the live checkpoint %s: %w", r.cfg.Shadow.Name, res.Live, err)
	}
	// 4.
	shadow, err := lockCheckpointRow(ctx, tx, r.cfg.Shadow.Name)
	if err != nil {
		return res, fmt.Errorf("lock the shadow's checkpoint: %w", err)
	}
	res.Shadow = shadow
	if shadow.Less(res.Live) {
		return res, fmt.Errorf("the shadow's checkpoint %s is behind the live one %s: catch it up first", shadow, res.Live)
	}
	// 5.
	var all []string
	for _, t := range chatLogTables {
		all = append(all, ident(t.name), ident(r.shadowTable(t.name)))
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE `+strings.Join(all, ", ")+` IN ACCESS EXCLUSIVE MODE`); err != nil {
		return res, fmt.Errorf("lock the tables: %w", err)
	}
	// 6.
	for _, t := range chatLogTables {
		if err := r.swapTable(ctx, tx, t.name); err != nil {
			return res, err
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO projection_checkpoints (name, commit_pos, prepare_pos) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET commit_pos = EXCLUDED.commit_pos, prepare_pos = EXCLUDED.prepare_pos, updated_at = now(),
			last_error = NULL, last_error_at = NULL, stopped_commit = NULL, stopped_prepare = NULL`,
		oldName, int64(res.Live.Commit), int64(res.Live.Prepare)); err != nil {
		return res, fmt.Errorf("keep the old checkpoint: %w", err)
	}
	if _, err := tx.Exec(ctx, saveCheckpointSQL, DefaultChatLogName, int64(shadow.Commit), int64(shadow.Prepare)); err != nil {
		return res, fmt.Errorf("move the shadow's checkpoint to the live projection: %w", err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM projection_checkpoints WHERE name = $1`, r.cfg.Shadow.Name); err != nil {
		return res, fmt.Errorf("drop the shadow's checkpoint: %w", err)
	}
	return res, tx.Commit(ctx) // 7.
}

// swapTable renames live table t and its indexes to the old names, and
// the shadow table and its indexes to the live names.
func (r *ChatLogRebuild) swapTable(ctx context.Context, tx pgx.Tx, t string) error {
	shadowT, oldT := r.shadowTable(t), t+oldSuffix
	liveIdx, err := indexes(ctx, tx, t)
	if err != nil {
		return err
	}
	shadowIdx, err := indexes(ctx, tx, shadowT)
	if err != nil {
		return err
	}
	var stmts []string
	for key, name := range liveIdx {
		if _, ok := shadowIdx[key]; !ok {
			return fmt.Errorf("the shadow table %s lacks index %s of %s (%s): rebuild from scratch", shadowT, name, t, key)
		}
		oldIdx := name + oldSuffix
		if rest, ok := strings.CutPrefix(name, t+"_"); ok {
			oldIdx = oldT + "_" + rest
		}
		if len(oldIdx) > 63 {
			return fmt.Errorf("cannot name the old copy of index %s", name)
		}
		stmts = append(stmts, `ALTER INDEX `+ident(name)+` RENAME TO `+ident(oldIdx))
	}
	stmts = append(stmts,
		`ALTER TABLE `+ident(t)+` RENAME TO `+ident(oldT),
		`ALTER TABLE `+ident(shadowT)+` RENAME TO `+ident(t))
	for key, name := range shadowIdx {
		if live, ok := liveIdx[key]; ok && live != name {
			stmts = append(stmts, `ALTER INDEX `+ident(name)+` RENAME TO `+ident(live))
		}
	}
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			return fmt.Errorf("swap %s: %s: %w", t, s, err)
		}
	}
	return nil
}

// OldExists reports whether the old copy of an earlier swap is still
// there.
func (r *ChatLogRebuild) OldExists(ctx context.Context) (bool, error) {
	var n int
	if err := r.pool.QueryRow(ctx, `SELECT count(*) FROM unnest($1::text[]) t WHERE to_regclass(t) IS NOT NULL`, r.tableNames(oldSuffix)).Scan(&n); err != nil {
		return false, fmt.Errorf("postgres: look for the old chat log tables: %w", err)
	}
	return n > 0, nil
}

func (r *ChatLogRebuild) tableNames(suffix string) []string {
	var out []string
	for _, t := range chatLogTables {
		out = append(out, t.name+suffix)
	}
	return out
}

// DropOld drops the old copy of the last swap, tables and checkpoint, and
// reports whether there was one.
func (r *ChatLogRebuild) DropOld(ctx context.Context) (bool, error) {
	dropped, err := r.drop(ctx, oldSuffix, oldName)
	if err != nil {
		return false, fmt.Errorf("postgres: drop the old chat log tables: %w", err)
	}
	return dropped, nil
}

// DropShadow drops the shadow tables and checkpoint, and reports whether
// there were any.
func (r *ChatLogRebuild) DropShadow(ctx context.Context) (bool, error) {
	dropped, err := r.drop(ctx, r.cfg.Shadow.TableSuffix, r.cfg.Shadow.Name)
	if err != nil {
		return false, fmt.Errorf("postgres: drop the shadow tables of %s: %w", r.cfg.Shadow.Name, err)
	}
	return dropped, nil
}

func (r *ChatLogRebuild) drop(ctx context.Context, suffix, name string) (bool, error) {
	var dropped bool
	err := pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		if err := r.setLockTimeout(ctx, tx); err != nil {
			return err
		}
		for _, t := range r.tableNames(suffix) {
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, t).Scan(&exists); err != nil {
				return err
			}
			if !exists {
				continue
			}
			dropped = true
			if _, err := tx.Exec(ctx, `DROP TABLE `+ident(t)); err != nil {
				return err
			}
		}
		tag, err := tx.Exec(ctx, `DELETE FROM projection_checkpoints WHERE name = $1`, name)
		dropped = dropped || tag.RowsAffected() > 0
		return err
	})
	return dropped, err
}
