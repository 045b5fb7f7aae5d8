// Package pgtest gives each test its own fresh, migrated Postgres database,
// cloned from a template that is migrated once per schema version, and
// drops it when the test ends.
//
// The server comes from PARLEY_TEST_POSTGRES_URL (default
// postgres://parley:parley@127.0.0.1:5432/parley?sslmode=disable), which
// `make test` brings up. Tests fail, not skip, when it cannot be reached:
// Postgres is a real dependency of the suite.
//
// StartServer starts a private server instead, for a test (or make chaos)
// that stops, crashes or restarts one: never the shared server.
package pgtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/adapters/postgres"
)

// DefaultURL is the server `make test` starts.
const DefaultURL = "postgres://parley:parley@127.0.0.1:5432/parley?sslmode=disable"

// AdminURL returns the URL of the server tests use.
func AdminURL() string {
	if u := os.Getenv("PARLEY_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// templateLockKey serialises template creation across test processes.
const templateLockKey int64 = 0x7061726c65790002

// NewDatabase creates a fresh migrated database for t, returns its URL, and
// drops it in t.Cleanup.
func NewDatabase(t testing.TB) string {
	t.Helper()
	return newDatabase(t, true)
}

// NewEmptyDatabase creates a fresh database with no schema (for migration
// tests), returns its URL, and drops it in t.Cleanup.
func NewEmptyDatabase(t testing.TB) string {
	t.Helper()
	return newDatabase(t, false)
}

func newDatabase(t testing.TB, migrated bool) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		t.Fatalf("pgtest: cannot reach Postgres at %s: %v\n(run `make test`, which starts Postgres, or set PARLEY_TEST_POSTGRES_URL)", redact(AdminURL()), err)
	}
	defer admin.Close(context.Background())

	tmpl := "template0"
	if migrated {
		if tmpl, err = ensureTemplate(ctx, admin); err != nil {
			t.Fatalf("pgtest: %v", err)
		}
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "parley_test_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", name, tmpl)); err != nil {
		t.Fatalf("pgtest: create database %s from %s: %v", name, tmpl, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, AdminURL())
		if err != nil {
			t.Logf("pgtest: drop %s: %v", name, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("pgtest: drop %s: %v", name, err)
		}
	})
	return withDatabase(AdminURL(), name)
}

// NewPool is NewDatabase plus a pool of at most maxConns connections (0 for
// pgx's default), closed in t.Cleanup.
func NewPool(t testing.TB, maxConns int32) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("pgtest: open pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// Strings runs a query whose rows are one text column on pool and returns
// them, failing t on any error.
func Strings(t testing.TB, pool *pgxpool.Pool, sql string, args ...any) []string {
	t.Helper()
	rows, err := pool.Query(t.Context(), sql, args...)
	if err != nil {
		t.Fatalf("pgtest: query %q: %v", sql, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("pgtest: query %q: %v", sql, err)
	}
	return out
}

// ensureTemplate returns the name of a migrated template database for the
// current migrations, building it if needed.
func ensureTemplate(ctx context.Context, admin *pgx.Conn) (string, error) {
	all, err := postgres.Migrations()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, m := range all {
		h.Write([]byte(m.Checksum))
	}
	name := "parley_tmpl_" + hex.EncodeToString(h.Sum(nil))[:16]

	if _, err := admin.Exec(ctx, `SELECT pg_advisory_lock($1)`, templateLockKey); err != nil {
		return "", fmt.Errorf("lock template creation: %w", err)
	}
	defer admin.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, templateLockKey)

	var comment *string
	err = admin.QueryRow(ctx, `SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1`, name).Scan(&comment)
	switch {
	case err == nil && comment != nil && *comment == "ready":
		return name, nil
	case err == nil: // left half-built by a crashed run
		if _, err := admin.Exec(ctx, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			return "", fmt.Errorf("drop half-built template %s: %w", name, err)
		}
	case err != pgx.ErrNoRows:
		return "", fmt.Errorf("look up template %s: %w", name, err)
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("create template %s: %w", name, err)
	}
	pool, err := pgxpool.New(ctx, withDatabase(AdminURL(), name))
	if err != nil {
		return "", fmt.Errorf("connect to template %s: %w", name, err)
	}
	err = postgres.Migrate(ctx, pool, nil)
	pool.Close()
	if err != nil {
		return "", fmt.Errorf("migrate template %s: %w", name, err)
	}
	if _, err := admin.Exec(ctx, "COMMENT ON DATABASE "+name+" IS 'ready'"); err != nil {
		return "", fmt.Errorf("mark template %s ready: %w", name, err)
	}
	return name, nil
}

// withDatabase replaces the database name in a postgres:// URL.
func withDatabase(raw, db string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.Path = "/" + db
	return u.String()
}

// redact hides the password in a URL for error messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
