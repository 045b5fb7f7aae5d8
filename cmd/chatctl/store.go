package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/parleychat/parley/adapters/kurrentdb"
	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/domain"
)

// openEventStore opens the event store the environment names: KurrentDB
// when PARLEY_KURRENTDB_URL is set, else Postgres at PARLEY_DATABASE_URL
// (or the local development database). It returns the store, a short
// name of it for messages (never the URL, which may hold a password), and
// a function that closes it.
func openEventStore(ctx context.Context, getenv func(string) string, log *slog.Logger) (domain.EventStore, string, func(), error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if url := getenv("PARLEY_KURRENTDB_URL"); url != "" {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		s, err := kurrentdb.Dial(dctx, url, kurrentdb.Options{Logger: log})
		if err != nil {
			return nil, "", nil, fmt.Errorf("open the KurrentDB event store named by PARLEY_KURRENTDB_URL: %w (unset it to use Postgres)", err)
		}
		return s, "KurrentDB", func() { _ = s.Close() }, nil
	}
	pool, err := openPool(ctx, databaseURL(getenv))
	if err != nil {
		return nil, "", nil, fmt.Errorf("open the Postgres event store: %w", err)
	}
	s := postgres.NewStore(pool, postgres.StoreConfig{Logger: log})
	return s, "Postgres", func() { _ = s.Close(); pool.Close() }, nil
}
