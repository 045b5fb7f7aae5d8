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
	s := postgres.NewStore(pgtest.NewPool(t, 0), postgres.StoreConfig{ReadInterval: 300 * time.Millisecond})
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
	// The read that brought it began less than 300ms ago: the next may
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
