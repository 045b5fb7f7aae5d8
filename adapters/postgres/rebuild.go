package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/projections"
)

// The ChatLog's rebuild, and the protocol of its swap.
//
// ChatLogRebuild is the ChatLog's projections.Rebuildable: the protocol
// (projections.Rebuild) runs the live ChatLog's code (ChatLog.Apply) from
// position zero into shadow tables, rooms_next and chat_logs_next
// (created LIKE the live ones INCLUDING ALL), checkpointed as
// "chatlog_next" (a dry run's: _dryrun, "chatlog_dryrun"). An interrupted
// rebuild leaves them, and the next one resumes from their checkpoint.
// Once the shadow has caught up with the log, Swap exchanges it with the
// live tables in one transaction, while chatd's own ChatLog runner keeps
// applying new events to whatever tables are live:
//
//  1. SET LOCAL lock_timeout (ChatLogRebuildConfig.LockTimeout, 2s).
//  2. Lock the live checkpoint row ("chatlog") and read it: L, and the
//     log it belongs to. The live
//     runner's Apply takes this row lock first, so from here on no live
//     batch can write; one in flight has committed (or we would still be
//     waiting). Apply takes it in a statement of its own, before any
//     statement naming a table: pgx may parse a batch's statements before
//     running them (describe modes, statements not cached yet), and
//     parsing locks the tables named. So both sides lock the row, then
//     the tables, and cannot deadlock.
//  3. Catch the shadow up to exactly L, in other sessions (the catchUp
//     callback): every event the live tables hold, the shadow then holds.
//     (When L belongs to another log, the callback asks for nothing.)
//  4. Lock the shadow's checkpoint row and read it: S, at or after what
//     the callback asked for (else projections.ErrShadowBehind).
//  5. LOCK TABLE the four tables ACCESS EXCLUSIVE: wait for readers of
//     the live tables (chatd's queries) to finish; readers arriving now
//     queue behind us, for at most the lock timeout.
//  6. Rename the live tables and their indexes to *_old, the shadow's to
//     the live names; move the checkpoints: "chatlog_old" gets L,
//     "chatlog" gets S and the shadow's log (updating the row in place,
//     not replacing it), "chatlog_next" goes.
//  7. COMMIT. A lock timeout (or a deadlock) at any step rolls everything
//     back: projections.ErrSwapContended, and the protocol tries again.
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
// further swap refuses to run while it exists (projections.ErrOldCopyExists).

// Defaults of ChatLogRebuildConfig.
const (
	DefaultShadowName        = "chatlog_next"
	DefaultShadowTableSuffix = "_next"
	DryRunShadowName         = "chatlog_dryrun"
	DryRunShadowTableSuffix  = "_dryrun"
	DefaultSwapLockTimeout   = 2 * time.Second
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

var _ projections.Rebuildable = (*ChatLogRebuild)(nil)

// ChatLogRebuildConfig configures a ChatLogRebuild. The zero value
// rebuilds the live ChatLog into "chatlog_next".
type ChatLogRebuildConfig struct {
	// DryRun rebuilds into scratch tables, always from scratch, for a
	// dry run: Shadow defaults to {Name: DryRunShadowName, TableSuffix:
	// DryRunShadowTableSuffix}.
	DryRun bool
	// Shadow names the shadow tables and checkpoint. Default
	// {Name: DefaultShadowName, TableSuffix: DefaultShadowTableSuffix}.
	// Its suffix must not be empty or "_old".
	Shadow ChatLogConfig
	// LockTimeout bounds each wait for a lock in Swap and Compare, so
	// that chatd's readers never queue behind the swap for longer.
	// Default DefaultSwapLockTimeout.
	LockTimeout time.Duration
	// Keys seals the live and the rebuilt ChatLog (ChatLogConfig.Keys).
	Keys RoomKeys
}

// ChatLogRebuild rebuilds the live ChatLog (tables rooms and chat_logs,
// checkpoint "chatlog") in shadow tables and swaps them in; see the
// protocol above.
type ChatLogRebuild struct {
	pool   *pgxpool.Pool
	cfg    ChatLogRebuildConfig
	live   *ChatLog
	shadow *ChatLog
}

// NewChatLogRebuild returns the rebuild of the live ChatLog over a
// migrated database. It changes nothing until Prepare.
func NewChatLogRebuild(pool *pgxpool.Pool, cfg ChatLogRebuildConfig) (*ChatLogRebuild, error) {
	switch {
	case cfg.Shadow != (ChatLogConfig{}):
	case cfg.DryRun:
		cfg.Shadow = ChatLogConfig{Name: DryRunShadowName, TableSuffix: DryRunShadowTableSuffix}
	default:
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
	live, err := NewChatLog(pool, ChatLogConfig{Keys: cfg.Keys})
	if err != nil {
		return nil, err
	}
	shadow := cfg.Shadow
	shadow.Keys = cfg.Keys
	shadowLog, err := NewChatLog(pool, shadow)
	if err != nil {
		return nil, err
	}
	return &ChatLogRebuild{pool: pool, cfg: cfg, live: live, shadow: shadowLog}, nil
}

// Live implements projections.Rebuildable: the live ChatLog.
func (r *ChatLogRebuild) Live() projections.Projection { return r.live }

// Shadow is the ChatLog writing the shadow tables: the projection a
// rebuild runs.
func (r *ChatLogRebuild) Shadow() *ChatLog { return r.shadow }

func (r *ChatLogRebuild) shadowTable(t string) string { return t + r.cfg.Shadow.TableSuffix }

// Prepare implements projections.Rebuildable: it takes the rebuild's
// lock (Lock), then keeps the shadow tables an interrupted rebuild left
// when they still have the live tables' shape, or creates them afresh
// (PrepareTables); a dry run's always afresh.
func (r *ChatLogRebuild) Prepare(ctx context.Context) (projections.Projection, bool, func(), error) {
	unlock, err := r.Lock(ctx)
	if err != nil {
		return nil, false, nil, err
	}
	if r.cfg.DryRun {
		if _, err := r.DropShadow(ctx); err != nil {
			unlock()
			return nil, false, nil, err
		}
	}
	resumed, err := r.PrepareTables(ctx)
	if err != nil {
		unlock()
		return nil, false, nil, err
	}
	return r.shadow, resumed, unlock, nil
}

// Lock takes the rebuild's advisory lock on a connection of its own, so
// that two rebuilds into the same shadow never run at once; unlock
// releases it. It fails at once, with projections.ErrRebuildRunning, when
// another process holds it.
func (r *ChatLogRebuild) Lock(ctx context.Context) (unlock func(), err error) {
	unlock, ok, err := TryAdvisoryLock(ctx, r.pool, "parley rebuild "+r.cfg.Shadow.Name)
	if err != nil {
		return nil, fmt.Errorf("postgres: lock the rebuild of %s: %w", r.cfg.Shadow.Name, err)
	}
	if !ok {
		return nil, fmt.Errorf("postgres: %w (into %s); wait for it or stop it", projections.ErrRebuildRunning, r.cfg.Shadow.Name)
	}
	return unlock, nil
}

// PrepareTables creates the shadow tables, empty, with a fresh
// checkpoint, or keeps those an interrupted rebuild left when they still
// have the live tables' shape; resumed reports which. The shadow's
// checkpoint is dropped whenever its tables are created, so that the two
// never disagree.
func (r *ChatLogRebuild) PrepareTables(ctx context.Context) (resumed bool, err error) {
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

// OldCopy implements projections.Rebuildable: where the old copy of an
// earlier swap is, or "" when there is none.
func (r *ChatLogRebuild) OldCopy(ctx context.Context) (string, error) {
	var n int
	if err := r.pool.QueryRow(ctx, `SELECT count(*) FROM unnest($1::text[]) t WHERE to_regclass(t) IS NOT NULL`, r.tableNames(oldSuffix)).Scan(&n); err != nil {
		return "", fmt.Errorf("postgres: look for the old chat log tables: %w", err)
	}
	if n == 0 {
		return "", nil
	}
	return "tables rooms_old and chat_logs_old", nil
}

func (r *ChatLogRebuild) tableNames(suffix string) []string {
	var out []string
	for _, t := range chatLogTables {
		out = append(out, t.name+suffix)
	}
	return out
}

// DropOld implements projections.Rebuildable: it drops the old copy of
// the last swap, tables and checkpoint, and reports whether there was one.
func (r *ChatLogRebuild) DropOld(ctx context.Context) (bool, error) {
	dropped, err := r.drop(ctx, oldSuffix, oldName)
	if err != nil {
		return false, fmt.Errorf("postgres: drop the old chat log tables: %w", err)
	}
	return dropped, nil
}

// DropShadow implements projections.Rebuildable: it drops the shadow
// tables and checkpoint, and reports whether there were any.
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
