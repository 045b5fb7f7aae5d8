package postgres_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/adapters/postgres/pgtest"
)

func emptyPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), pgtest.NewEmptyDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func TestMigrateConcurrentlyThenStatus(t *testing.T) {
	pool := emptyPool(t)
	before, err := postgres.MigrationStatus(t.Context(), pool)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range before {
		if !m.AppliedAt.IsZero() {
			t.Errorf("migration %d applied before Migrate ran", m.Version)
		}
	}
	// Several processes starting at once: the advisory lock makes each
	// migration apply once.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = postgres.Migrate(t.Context(), pool, nil) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Migrate %d: %v", i, err)
		}
	}
	after, err := postgres.MigrationStatus(t.Context(), pool)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) == 0 || len(after) != len(before) {
		t.Fatalf("status lists %d migrations, want %d (> 0)", len(after), len(before))
	}
	for _, m := range after {
		if m.AppliedAt.IsZero() {
			t.Errorf("migration %04d_%s still pending", m.Version, m.Name)
		}
	}
	var rows int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM schema_migrations`).Scan(&rows); err != nil || rows != len(after) {
		t.Errorf("schema_migrations has %d rows (%v), want %d", rows, err, len(after))
	}
}

func TestMigrateRefusesAnEditedMigration(t *testing.T) {
	pool := emptyPool(t)
	all, err := postgres.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if err := postgres.MigrateList(t.Context(), pool, all, nil); err != nil {
		t.Fatal(err)
	}
	edited := append([]postgres.Migration(nil), all...)
	edited[0].Checksum = strings.Repeat("0", 64)
	err = postgres.MigrateList(t.Context(), pool, edited, nil)
	if err == nil || !strings.Contains(err.Error(), "was changed after it was applied") {
		t.Errorf("migrate with an edited migration: err = %v, want a changed-migration error", err)
	}
}

func TestMigrateFailureRollsBackThatMigration(t *testing.T) {
	pool := emptyPool(t)
	bad := []postgres.Migration{{Version: 1, Name: "bad", Checksum: strings.Repeat("1", 64), SQL: "CREATE TABLE half (x int); SELECT nope;"}}
	err := postgres.MigrateList(t.Context(), pool, bad, nil)
	if err == nil || !strings.Contains(err.Error(), "0001_bad") {
		t.Fatalf("err = %v, want it to name 0001_bad", err)
	}
	var exists bool
	if err := pool.QueryRow(t.Context(), `SELECT to_regclass('half') IS NOT NULL`).Scan(&exists); err != nil || exists {
		t.Errorf("table of the failed migration exists = %v (%v), want rolled back", exists, err)
	}
}
