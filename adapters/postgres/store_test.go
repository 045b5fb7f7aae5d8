package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/adapters/postgres/pgtest"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/domaintest"
)

func newStore(t *testing.T) *postgres.Store {
	t.Helper()
	s := postgres.NewStore(pgtest.NewPool(t, 80), postgres.StoreConfig{})
	t.Cleanup(func() { s.Close() })
	return s
}

func TestContract(t *testing.T) {
	domaintest.RunEventStoreTests(t, func(t *testing.T) domain.EventStore { return newStore(t) })
}

// TestReadIntervalGathersAppends: a live subscription reads at most once
// per ReadInterval, so appends that land within it arrive in one batch.
func TestReadIntervalGathersAppends(t *testing.T) {
	s := postgres.NewStore(pgtest.NewPool(t, 0), postgres.StoreConfig{ReadInterval: time.Second})
	t.Cleanup(func() { s.Close() })
	stream := domaintest.UniquePrefix(t) + "s"
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	batches := make(chan int, 16)
	done := make(chan error, 1)
	go func() {
		done <- s.SubscribeStream(ctx, stream, domain.NoVersion, func(_ context.Context, b []domain.RecordedEvent) error {
			batches <- len(b)
			return nil
		})
	}()
	if _, err := s.Append(t.Context(), stream, domain.NoStream(), domaintest.Events(t, "E", 1)...); err != nil {
		t.Fatal(err)
	}
	if n := <-batches; n != 1 {
		t.Fatalf("first batch: %d events, want 1", n)
	}
	// The read that brought it began less than a second ago: the next may
	// not start before these three are stored.
	for i := range 3 {
		if _, err := s.Append(t.Context(), stream, domain.Exact(int64(i)), domaintest.Events(t, "E", 1)...); err != nil {
			t.Fatal(err)
		}
	}
	if n := <-batches; n != 3 {
		t.Errorf("second batch: %d events, want the 3 appended within the interval", n)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("subscription ended with %v", err)
	}
}

// TestReadAllReachesTheHead: a ReadAll after HeadPosition returns the
// events up to that head, even when the log's bound, worked out afresh,
// falls back below it. Here a transaction that held an ID but no lock on
// the events table (so the head could pass it) reads the events table
// next, which makes the bound count it as a writer again.
func TestReadAllReachesTheHead(t *testing.T) {
	pool := pgtest.NewPool(t, 0)
	s := postgres.NewStore(pool, postgres.StoreConfig{})
	t.Cleanup(func() { s.Close() })
	ctx := t.Context()
	other, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback(context.WithoutCancel(ctx))
	if _, err := other.Exec(ctx, `SELECT pg_current_xact_id()`); err != nil {
		t.Fatal(err)
	}
	stream := domaintest.UniquePrefix(t) + "s"
	res, err := s.Append(ctx, stream, domain.NoStream(), domaintest.Events(t, "E", 1)...)
	if err != nil {
		t.Fatal(err)
	}
	head, err := s.HeadPosition(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if head != res.Position {
		t.Fatalf("HeadPosition = %s, want the append's %s: a transaction that holds no lock on events must not hold the head back", head, res.Position)
	}
	if _, err := other.Exec(ctx, `SELECT count(*) FROM events`); err != nil {
		t.Fatal(err)
	}
	evs, err := s.ReadAll(ctx, domain.ReadAllOptions{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Position != head {
		t.Errorf("ReadAll after HeadPosition %s returned %d events; want the one at the head", head, len(evs))
	}
	// A store that has returned nothing yet has no such mark: the same read
	// stops at the other transaction, so the test above is not vacuous.
	fresh := postgres.NewStore(pool, postgres.StoreConfig{})
	t.Cleanup(func() { fresh.Close() })
	if evs, err := fresh.ReadAll(ctx, domain.ReadAllOptions{Limit: 10}); err != nil || len(evs) != 0 {
		t.Errorf("a fresh store read %d events (%v); want none while the other transaction looks like a writer", len(evs), err)
	}
}

// TestSubscriptionBatch: a subscriber behind the log gets batches of the
// size SubscriptionBatch reports (a projection runner's FullBatch).
func TestSubscriptionBatch(t *testing.T) {
	for _, tc := range []struct {
		name   string
		config int
		want   int
	}{
		{"configured", 7, 7},
		{"default", 0, domain.DefaultReadLimit},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := postgres.NewStore(pgtest.NewPool(t, 0), postgres.StoreConfig{SubscriptionBatch: tc.config})
			t.Cleanup(func() { s.Close() })
			if got := s.SubscriptionBatch(); got != tc.want {
				t.Fatalf("SubscriptionBatch() = %d, want %d", got, tc.want)
			}
			stream := domaintest.UniquePrefix(t) + "s"
			if _, err := s.Append(t.Context(), stream, domain.NoStream(), domaintest.Events(t, "E", tc.want+1)...); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var sizes []int
			err := s.SubscribeAll(ctx, domain.SubscribeAllOptions{}, func(_ context.Context, b []domain.RecordedEvent) error {
				sizes = append(sizes, len(b))
				if len(sizes) == 2 {
					cancel()
				}
				return nil
			})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("subscription ended with %v", err)
			}
			if sizes[0] != tc.want || sizes[1] != 1 {
				t.Errorf("batches of %v for %d events, want %d then 1", sizes, tc.want+1, tc.want)
			}
		})
	}
}

// TestGlobalReadsUseGenericPlans: the global log's reads run on
// connections that keep one generic plan per statement (planning
// readAllSQL afresh on every call cost more than running it), and other
// statements keep PostgreSQL's default.
func TestGlobalReadsUseGenericPlans(t *testing.T) {
	pool := pgtest.NewPool(t, 0)
	s := postgres.NewStore(pool, postgres.StoreConfig{})
	mode, err := postgres.PlanCacheModeOfReads(t.Context(), s)
	if err != nil || mode != "force_generic_plan" {
		t.Errorf("plan_cache_mode of the log's reads = %q, %v; want force_generic_plan", mode, err)
	}
	var other string
	if err := pool.QueryRow(t.Context(), `SHOW plan_cache_mode`).Scan(&other); err != nil || other != "auto" {
		t.Errorf("plan_cache_mode of the pool = %q, %v; want auto", other, err)
	}
	if _, err := s.ReadAll(t.Context(), domain.ReadAllOptions{}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := s.ReadAll(t.Context(), domain.ReadAllOptions{}); err != nil {
		t.Errorf("ReadAll after Close: %v; want it read through the pool", err)
	}
}
