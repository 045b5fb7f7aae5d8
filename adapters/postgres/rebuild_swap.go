package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/projections"
)

// The ChatLog rebuild's swap and comparison: the steps that hold the live
// ChatLog still (see rebuild.go for the protocol).

// Swap implements projections.Rebuildable: it makes the shadow tables
// live in one transaction, following the protocol described in
// rebuild.go. When a lock is not granted within the lock timeout (or a
// deadlock is detected), everything is rolled back and the error wraps
// projections.ErrSwapContended.
func (r *ChatLogRebuild) Swap(ctx context.Context, catchUp projections.CatchUpFunc) (projections.SwapResult, error) {
	old, err := r.OldCopy(ctx)
	if err != nil {
		return projections.SwapResult{}, err
	}
	if old != "" {
		return projections.SwapResult{}, fmt.Errorf("postgres: %w (%s)", projections.ErrOldCopyExists, old)
	}
	// Fresh statistics, so that chatd's first queries on the new tables
	// get good plans.
	for _, t := range chatLogTables {
		if _, err := r.pool.Exec(ctx, `ANALYZE `+ident(r.shadowTable(t.name))); err != nil {
			return projections.SwapResult{}, fmt.Errorf("postgres: swap: analyze %s: %w", r.shadowTable(t.name), err)
		}
	}
	res, err := r.swapOnce(ctx, catchUp)
	if err != nil {
		if contended(err) {
			err = fmt.Errorf("%w: %w", projections.ErrSwapContended, err)
		}
		return res, fmt.Errorf("postgres: swap %s into the live chat log: %w", r.cfg.Shadow.Name, err)
	}
	return res, nil
}

// contended reports a lock not granted in time (55P03) or a deadlock
// (40P01, which a runner that locks the tables before its checkpoint row
// would cause): trying again may work.
func contended(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "55P03" || pgErr.Code == "40P01")
}

func (r *ChatLogRebuild) setLockTimeout(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, fmt.Sprintf(`SET LOCAL lock_timeout = %d`, r.cfg.LockTimeout.Milliseconds()))
	return err
}

// lockCheckpointRow locks projection name's checkpoint row, if it has one,
// and returns its position and log (domain.Start and "" when it has none).
func lockCheckpointRow(ctx context.Context, tx pgx.Tx, name string) (projections.Checkpoint, error) {
	var (
		commit, prepare int64
		log             string
	)
	err := tx.QueryRow(ctx, `SELECT commit_pos, prepare_pos, coalesce(log_id, '') FROM projection_checkpoints WHERE name = $1 FOR UPDATE`, name).Scan(&commit, &prepare, &log)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return projections.Checkpoint{}, nil
	case err != nil:
		return projections.Checkpoint{}, err
	}
	return projections.Checkpoint{Position: domain.Position{Commit: uint64(commit), Prepare: uint64(prepare)}, Log: log}, nil
}

// holdLive begins a transaction that holds the live ChatLog still: it
// locks the live checkpoint row, which the live runner's Apply locks
// first, and returns it. With create, the row is created when the live
// projection has never run, so that a runner starting now waits too.
func (r *ChatLogRebuild) holdLive(ctx context.Context, create bool) (pgx.Tx, projections.Checkpoint, error) {
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		return nil, projections.Checkpoint{}, err
	}
	if err := r.setLockTimeout(ctx, tx); err != nil {
		tx.Rollback(context.WithoutCancel(ctx))
		return nil, projections.Checkpoint{}, err
	}
	if create {
		if _, err := lockCheckpoint(ctx, tx, DefaultChatLogName); err != nil {
			tx.Rollback(context.WithoutCancel(ctx))
			return nil, projections.Checkpoint{}, fmt.Errorf("lock the live checkpoint: %w", err)
		}
	}
	live, err := lockCheckpointRow(ctx, tx, DefaultChatLogName)
	if err != nil {
		tx.Rollback(context.WithoutCancel(ctx))
		return nil, projections.Checkpoint{}, fmt.Errorf("read the live checkpoint: %w", err)
	}
	return tx, live, nil
}

func (r *ChatLogRebuild) swapOnce(ctx context.Context, catchUp projections.CatchUpFunc) (projections.SwapResult, error) {
	var res projections.SwapResult
	tx, live, err := r.holdLive(ctx, true) // 1. and 2.
	if err != nil {
		return res, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	res.Live = live.Position
	// 3. The shadow gets everything the live tables have.
	need, err := catchUp(ctx, live)
	if err != nil {
		return res, fmt.Errorf("catch %s up to the live checkpoint %s: %w", r.cfg.Shadow.Name, live.Position, err)
	}
	// 4.
	shadow, err := lockCheckpointRow(ctx, tx, r.cfg.Shadow.Name)
	if err != nil {
		return res, fmt.Errorf("lock the shadow's checkpoint: %w", err)
	}
	res.Shadow = shadow.Position
	if shadow.Position.Less(need) {
		return res, fmt.Errorf("%w: the shadow's checkpoint %s is before %s", projections.ErrShadowBehind, shadow.Position, need)
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
	if _, err := tx.Exec(ctx, `INSERT INTO projection_checkpoints (name, commit_pos, prepare_pos, log_id) VALUES ($1, $2, $3, nullif($4, ''))
		ON CONFLICT (name) DO UPDATE SET commit_pos = EXCLUDED.commit_pos, prepare_pos = EXCLUDED.prepare_pos, log_id = EXCLUDED.log_id,
			updated_at = now(), last_error = NULL, last_error_at = NULL, stopped_commit = NULL, stopped_prepare = NULL`,
		oldName, int64(live.Position.Commit), int64(live.Position.Prepare), live.Log); err != nil {
		return res, fmt.Errorf("keep the old checkpoint: %w", err)
	}
	if _, err := tx.Exec(ctx, saveCheckpointSQL, DefaultChatLogName, int64(shadow.Position.Commit), int64(shadow.Position.Prepare)); err != nil {
		return res, fmt.Errorf("move the shadow's checkpoint to the live projection: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE projection_checkpoints SET log_id = nullif($2, '') WHERE name = $1`, DefaultChatLogName, shadow.Log); err != nil {
		return res, fmt.Errorf("move the shadow's log to the live projection: %w", err)
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

// Compare implements projections.Rebuildable: it reports how the shadow
// tables differ from the live ones, both at the live projection's
// checkpoint. It holds the live ChatLog still (as Swap does), has catchUp
// bring the shadow to exactly that position, takes a snapshot of both,
// releases the live projection and compares in the snapshot. Its parts
// are "rooms" and "messages"; their examples are room ids.
func (r *ChatLogRebuild) Compare(ctx context.Context, catchUp projections.CatchUpFunc) (projections.Diff, error) {
	var diff projections.Diff
	hold, live, err := r.holdLive(ctx, false)
	if err != nil {
		if contended(err) {
			err = fmt.Errorf("%w: %w", projections.ErrSwapContended, err)
		}
		return diff, fmt.Errorf("postgres: compare %s with the live chat log: %w", r.cfg.Shadow.Name, err)
	}
	defer hold.Rollback(context.WithoutCancel(ctx))
	if _, err := catchUp(ctx, live); err != nil {
		return diff, fmt.Errorf("postgres: compare with the live chat log: catch %s up to %s: %w", r.cfg.Shadow.Name, live.Position, err)
	}
	snap, err := r.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return diff, fmt.Errorf("postgres: compare with the live chat log: %w", err)
	}
	defer snap.Rollback(context.WithoutCancel(ctx))
	snapLive, err := readCheckpoint(ctx, snap, DefaultChatLogName) // takes the snapshot
	if err != nil {
		return diff, err
	}
	if diff.Shadow, err = readCheckpoint(ctx, snap, r.cfg.Shadow.Name); err != nil {
		return diff, err
	}
	if err := hold.Commit(ctx); err != nil { // the live projection goes on
		return diff, fmt.Errorf("postgres: compare with the live chat log: %w", err)
	}
	diff.Live = live.Position
	if snapLive != live.Position {
		// Only when it had no checkpoint row to lock: it has just started.
		return diff, fmt.Errorf("postgres: compare with the live chat log: %w: its checkpoint moved from %s to %s", projections.ErrSwapContended, live.Position, snapLive)
	}
	for i, t := range chatLogTables {
		part, err := compareTable(ctx, snap, t.name, r.shadowTable(t.name), t.keys, t.room)
		if err != nil {
			return diff, fmt.Errorf("postgres: compare %s with %s: %w", r.shadowTable(t.name), t.name, err)
		}
		part.What = []string{"rooms", "messages"}[i]
		diff.Parts = append(diff.Parts, part)
	}
	return diff, nil
}

// compareTable counts the differences between live and shadow in one
// statement, joining on keys and comparing every column; its examples are
// up to 10 rooms with a difference, smallest first.
func compareTable(ctx context.Context, tx pgx.Tx, live, shadow string, keys []string, roomCol string) (projections.DiffPart, error) {
	var d projections.DiffPart
	rows, err := tx.Query(ctx, `SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, live)
	if err != nil {
		return d, err
	}
	cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return d, err
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
	var ids []int64
	err = tx.QueryRow(ctx, q).Scan(&d.Live, &d.Shadow, &d.Differing, &d.Missing, &d.Extra, &ids)
	for _, id := range ids {
		d.Examples = append(d.Examples, fmt.Sprintf("room %d", id))
	}
	return d, err
}
