package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/parleychat/parley/adapters/kurrentdb"
	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/audit"
)

// openEventStore opens the event store the environment names (see
// kurrentDBURL): KurrentDB, else Postgres at PARLEY_DATABASE_URL (or the
// local development database), with its appends hash-chained as chatd's
// are. It returns the store, a short name of it for messages (never the
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
	if url, ok := kurrentDBURL(getenv); ok {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		s, err := kurrentdb.Dial(dctx, url, kurrentdb.Options{Logger: log})
		if err != nil {
			return nil, "", nil, fmt.Errorf("open the KurrentDB event store named by PARLEY_KURRENTDB_URL: %w (unset it, or set PARLEY_EVENT_STORE=postgres, to use Postgres)", err)
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

// kurrentDBURL tells whether the event store is KurrentDB, as chatd
// decides it: PARLEY_EVENT_STORE when set (postgres or kurrentdb), else
// KurrentDB whenever PARLEY_KURRENTDB_URL is set.
func kurrentDBURL(getenv func(string) string) (string, bool) {
	url := getenv("PARLEY_KURRENTDB_URL")
	switch getenv("PARLEY_EVENT_STORE") {
	case "postgres":
		return "", false
	case "kurrentdb":
		return url, true
	}
	return url, url != ""
}
