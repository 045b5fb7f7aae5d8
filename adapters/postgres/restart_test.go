package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/adapters/postgres/pgtest"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/domaintest"
)

// TestServerOutageAndRestart runs a store against a private server that
// it stops (immediately, as a crash does) and starts again. While it is
// down, calls fail with code unavailable (503 and close 1013 at the edge);
// once it is back, a subscription that began before ends with
// domain.ErrStoreRestarted, since the server may have lost its last
// unflushed commits and reused their positions; a new one works.
func TestServerOutageAndRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	srv, err := pgtest.StartServer(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	pool, err := pgxpool.New(ctx, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := postgres.Migrate(ctx, pool, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	store := postgres.NewStore(pool, postgres.StoreConfig{PollInterval: 50 * time.Millisecond})
	t.Cleanup(func() { _ = store.Close() })
	ev := func() domain.EventData {
		return domain.EventData{ID: domaintest.NewID(t), Type: "Noted", Data: json.RawMessage(`{}`)}
	}
	if _, err := store.Append(ctx, "room-1", domain.Any(), ev()); err != nil {
		t.Fatal(err)
	}
	delivered := make(chan struct{}, 100)
	ended := make(chan error, 1)
	go func() {
		ended <- store.SubscribeAll(ctx, domain.SubscribeAllOptions{}, func(context.Context, []domain.RecordedEvent) error {
			delivered <- struct{}{}
			return nil
		})
	}()
	<-delivered

	if err := srv.Stop(ctx, "immediate"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.ReadStream(ctx, "room-1", domain.ReadStreamOptions{}); domain.ErrorCode(err) != domain.EUNAVAILABLE {
		t.Errorf("read while the server is down: %v (code %q), want code unavailable", err, domain.ErrorCode(err))
	}
	if _, err := store.Append(ctx, "room-1", domain.Any(), ev()); domain.ErrorCode(err) != domain.EUNAVAILABLE {
		t.Errorf("append while the server is down: %v (code %q), want code unavailable", err, domain.ErrorCode(err))
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-ended:
		if !errors.Is(err, domain.ErrStoreRestarted) {
			t.Fatalf("the subscription ended with %v, want ErrStoreRestarted", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the subscription went on across the restart")
	}
	if _, err := store.Append(ctx, "room-1", domain.Any(), ev()); err != nil {
		t.Fatalf("append after the restart: %v", err)
	}
	evs, err := store.ReadAll(ctx, domain.ReadAllOptions{})
	if err != nil || len(evs) != 2 {
		t.Fatalf("read after the restart: %d events, %v; want 2", len(evs), err)
	}
}
