package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/projections"
)

// Checkpoint is a projection's row in projection_checkpoints: how far it
// has applied the log, and what last went wrong.
type Checkpoint struct {
	Name string
	// Position is the position of the last event applied.
	Position domain.Position
	// UpdatedAt is when Position was last written.
	UpdatedAt time.Time
	// LastError is the error that stopped or delayed the projection since
	// its last successful batch, or "".
	LastError string
	// LastErrorAt is when LastError was recorded; zero when there is none.
	LastErrorAt time.Time
	// Stopped reports that the runner stopped on an event it can never
	// apply, at position StoppedAt; LastError says why.
	Stopped   bool
	StoppedAt domain.Position
	// LogID is the log Position belongs to (projections.LogBinder), ""
	// until the projection first runs.
	LogID string
}

// querier is what the checkpoint helpers need of a pool or a transaction.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// lockCheckpointSQL creates the checkpoint row if needed, locks it until
// the transaction ends and returns it: projections of the same name apply
// their batches one at a time.
const lockCheckpointSQL = `INSERT INTO projection_checkpoints AS p (name, commit_pos, prepare_pos)
VALUES ($1, 0, 0)
ON CONFLICT (name) DO UPDATE SET name = p.name
RETURNING commit_pos, prepare_pos`

// lockCheckpoint creates projection name's checkpoint row if needed,
// locks it until q's transaction ends (see lockCheckpointSQL) and returns
// its position.
func lockCheckpoint(ctx context.Context, q querier, name string) (domain.Position, error) {
	var commit, prepare int64
	if err := q.QueryRow(ctx, lockCheckpointSQL, name).Scan(&commit, &prepare); err != nil {
		return domain.Position{}, err
	}
	return domain.Position{Commit: uint64(commit), Prepare: uint64(prepare)}, nil
}

// saveCheckpointSQL moves a locked checkpoint and clears its error.
const saveCheckpointSQL = `UPDATE projection_checkpoints
SET commit_pos = $2, prepare_pos = $3, updated_at = now(),
	last_error = NULL, last_error_at = NULL, stopped_commit = NULL, stopped_prepare = NULL
WHERE name = $1`

// ListCheckpoints returns every projection's checkpoint, by name.
func ListCheckpoints(ctx context.Context, pool *pgxpool.Pool) ([]Checkpoint, error) {
	rows, err := pool.Query(ctx, `SELECT name, commit_pos, prepare_pos, updated_at, coalesce(last_error, ''),
			last_error_at, stopped_commit, stopped_prepare, coalesce(log_id, '')
		FROM projection_checkpoints ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("postgres: list projection checkpoints: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Checkpoint, error) {
		var (
			c                 Checkpoint
			commit, prepare   int64
			errorAt           *time.Time
			stoppedC, stopped *int64
		)
		err := row.Scan(&c.Name, &commit, &prepare, &c.UpdatedAt, &c.LastError, &errorAt, &stoppedC, &stopped, &c.LogID)
		c.Position = domain.Position{Commit: uint64(commit), Prepare: uint64(prepare)}
		c.UpdatedAt = c.UpdatedAt.UTC()
		if errorAt != nil {
			c.LastErrorAt = errorAt.UTC()
		}
		if stoppedC != nil && stopped != nil {
			c.Stopped, c.StoppedAt = true, domain.Position{Commit: uint64(*stoppedC), Prepare: uint64(*stopped)}
		}
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list projection checkpoints: %w", err)
	}
	return out, nil
}

// readCheckpoint returns the position of projection name, or domain.Start
// when it has none.
func readCheckpoint(ctx context.Context, q querier, name string) (domain.Position, error) {
	var commit, prepare int64
	err := q.QueryRow(ctx, `SELECT commit_pos, prepare_pos FROM projection_checkpoints WHERE name = $1`, name).Scan(&commit, &prepare)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return domain.Start, nil
	case err != nil:
		return domain.Position{}, fmt.Errorf("postgres: read the checkpoint of projection %s: %w", name, err)
	}
	return domain.Position{Commit: uint64(commit), Prepare: uint64(prepare)}, nil
}

// recordCheckpointError stores msg as projection name's last error,
// leaving its position alone. With stoppedAt nil it is a failure that may
// pass, and the projection is not stopped; otherwise the runner stopped on
// the event at *stoppedAt.
func recordCheckpointError(ctx context.Context, q querier, name, msg string, stoppedAt *domain.Position) error {
	var stoppedC, stoppedP *int64
	if stoppedAt != nil {
		c, p := int64(stoppedAt.Commit), int64(stoppedAt.Prepare)
		stoppedC, stoppedP = &c, &p
	}
	_, err := q.Exec(ctx, `INSERT INTO projection_checkpoints (name, commit_pos, prepare_pos, last_error, last_error_at, stopped_commit, stopped_prepare)
		VALUES ($1, 0, 0, $2, now(), $3, $4)
		ON CONFLICT (name) DO UPDATE SET last_error = EXCLUDED.last_error, last_error_at = EXCLUDED.last_error_at,
			stopped_commit = EXCLUDED.stopped_commit, stopped_prepare = EXCLUDED.stopped_prepare`,
		name, msg, stoppedC, stoppedP)
	if err != nil {
		return fmt.Errorf("postgres: record the error of projection %s: %w", name, err)
	}
	return nil
}

// bindCheckpointLog records log as the log of projection name's
// checkpoint when it records none (creating the row at position zero if
// needed), and returns the log it records (projections.LogBinder).
func bindCheckpointLog(ctx context.Context, q querier, name, log string) (string, error) {
	var bound string
	err := q.QueryRow(ctx, `INSERT INTO projection_checkpoints AS p (name, commit_pos, prepare_pos, log_id) VALUES ($1, 0, 0, $2)
		ON CONFLICT (name) DO UPDATE SET log_id = coalesce(p.log_id, EXCLUDED.log_id)
		RETURNING log_id`, name, log).Scan(&bound)
	if err != nil {
		return "", fmt.Errorf("postgres: record the log of projection %s: %w", name, err)
	}
	return bound, nil
}

var _ projections.LogBinder = (*ChatLog)(nil)

// BindLog implements projections.LogBinder: the log is kept in the
// checkpoint's row.
func (c *ChatLog) BindLog(ctx context.Context, log string) (string, error) {
	return bindCheckpointLog(ctx, c.pool, c.name, log)
}
