package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"regexp"
	"sort"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/migrations"
)

// migrationLockKey is the advisory lock held while migrating, so two
// processes starting at once apply each migration once.
const migrationLockKey int64 = 0x7061726c65790001 // "parley" 1

// Migration is one numbered SQL file.
type Migration struct {
	Version  int
	Name     string
	Checksum string
	SQL      string
}

// MigrationState is a migration and whether (and when) it was applied.
type MigrationState struct {
	Migration
	AppliedAt time.Time // zero when pending
}

var migrationName = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.sql$`)

// Migrations returns the embedded migrations in order.
func Migrations() ([]Migration, error) {
	return loadMigrations(migrations.FS)
}

func loadMigrations(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var out []Migration
	seen := map[int]string{}
	for _, e := range entries {
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		v, _ := strconv.Atoi(m[1])
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("migrations %s and %s share version %d", prev, e.Name(), v)
		}
		seen[v] = e.Name()
		b, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		sum := sha256.Sum256(b)
		out = append(out, Migration{Version: v, Name: m[2], Checksum: hex.EncodeToString(sum[:]), SQL: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    int PRIMARY KEY,
	name       text NOT NULL,
	checksum   text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`

// Migrate applies every pending migration in order, each in its own
// transaction, under an advisory lock. It fails when an applied migration's
// file has changed since. log may be nil.
func Migrate(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) error {
	all, err := Migrations()
	if err != nil {
		return err
	}
	return migrate(ctx, pool, all, log)
}

func migrate(ctx context.Context, pool *pgxpool.Pool, all []Migration, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: connect to postgres: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLockKey); err != nil {
		return fmt.Errorf("migrate: take the migration lock: %w", err)
	}
	defer func() {
		// Unlock with a fresh context: ctx may be cancelled by now.
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, `SELECT pg_advisory_unlock($1)`, migrationLockKey); err != nil {
			conn.Conn().Close(uctx) // the session ends and releases the lock
		}
	}()
	if _, err := conn.Exec(ctx, createMigrationsTable); err != nil {
		return fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	applied, err := appliedMigrations(ctx, conn.Conn())
	if err != nil {
		return err
	}
	for _, m := range all {
		if a, ok := applied[m.Version]; ok {
			if a.Checksum != m.Checksum {
				return fmt.Errorf("migrate: migration %04d_%s was changed after it was applied (checksum %s, applied %s); add a new migration instead of editing an applied one", m.Version, m.Name, m.Checksum[:12], a.Checksum[:12])
			}
			continue
		}
		start := time.Now()
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)`, m.Version, m.Name, m.Checksum)
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate: apply %04d_%s: %w", m.Version, m.Name, err)
		}
		log.Info("applied migration", "version", m.Version, "name", m.Name, "took", time.Since(start))
	}
	return nil
}

func appliedMigrations(ctx context.Context, conn *pgx.Conn) (map[int]MigrationState, error) {
	rows, err := conn.Query(ctx, `SELECT version, name, checksum, applied_at FROM schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	out := map[int]MigrationState{}
	for rows.Next() {
		var s MigrationState
		if err := rows.Scan(&s.Version, &s.Name, &s.Checksum, &s.AppliedAt); err != nil {
			return nil, fmt.Errorf("read schema_migrations: %w", err)
		}
		out[s.Version] = s
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	return out, nil
}

// MigrationStatus lists every embedded migration with the time it was
// applied, or a zero time when it is pending.
func MigrationStatus(ctx context.Context, pool *pgxpool.Pool) ([]MigrationState, error) {
	all, err := Migrations()
	if err != nil {
		return nil, err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("migration status: connect to postgres: %w", err)
	}
	defer conn.Release()
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	applied := map[int]MigrationState{}
	if exists {
		if applied, err = appliedMigrations(ctx, conn.Conn()); err != nil {
			return nil, fmt.Errorf("migration status: %w", err)
		}
	}
	out := make([]MigrationState, len(all))
	for i, m := range all {
		out[i] = MigrationState{Migration: m, AppliedAt: applied[m.Version].AppliedAt}
	}
	return out, nil
}
