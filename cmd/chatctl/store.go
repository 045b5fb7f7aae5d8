package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/parleychat/parley/adapters/kurrentdb"
	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/cmd/internal/storeenv"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/audit"
)

// openEventStore opens the event store chatd uses, as the environment
// names it (see cmd/internal/storeenv): KurrentDB when
// PARLEY_EVENT_STORE=kurrentdb, else Postgres at PARLEY_DATABASE_URL (or
// the local development database), with its appends hash-chained as
// chatd's are. It returns the store, a short name of it for messages (never the
// URL, which may hold a password), and a function that closes it.
func openEventStore(ctx context.Context, getenv func(string) string, log *slog.Logger) (domain.EventStore, string, func(), error) {
	s, name, closeStore, err := openRawEventStore(ctx, getenv, log)
	if err != nil {
		return nil, "", nil, err
	}
	return audit.NewChainingStore(s, audit.ChainOptions{}), name, closeStore, nil
}

// openRawEventStore is openEventStore without the chain: the store itself,
// for readers that want its own methods (postgres.Store.Streams).
func openRawEventStore(ctx context.Context, getenv func(string) string, log *slog.Logger) (domain.EventStore, string, func(), error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sc, err := storeenv.FromEnv(getenv)
	if err != nil {
		return nil, "", nil, fmt.Errorf("choose the event store: %w", err)
	}
	if sc.Kind == storeenv.KurrentDB {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		s, err := kurrentdb.Dial(dctx, sc.KurrentDBURL, kurrentdb.Options{Logger: log})
		if err != nil {
			return nil, "", nil, fmt.Errorf("open the KurrentDB event store (PARLEY_EVENT_STORE=kurrentdb) at PARLEY_KURRENTDB_URL: %w", err)
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
