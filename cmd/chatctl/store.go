package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/adapters/kurrentdb"
	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/cmd/internal/storeenv"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
)

// openEventStore opens the event store chatd uses, as the environment
// names it (see cmd/internal/storeenv): KurrentDB when
// PARLEY_EVENT_STORE=kurrentdb, else Postgres at PARLEY_DATABASE_URL (or
// the local development database). The store's warnings go to stderr. It
// returns the store itself, whose own methods (postgres.Store.Streams)
// readers may use; commands that append wrap it in
// audit.NewChainingStore, as chatd does, so that their events join the
// rooms' hash chains.
func openEventStore(ctx context.Context, getenv func(string) string, stderr io.Writer) (domain.EventStore, func(), error) {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	sc, err := storeenv.FromEnv(getenv)
	if err != nil {
		return nil, nil, fmt.Errorf("choose the event store: %w", err)
	}
	if sc.Kind == storeenv.KurrentDB {
		return openLog(ctx, sc, nil, postgres.StoreConfig{Logger: log})
	}
	pool, err := openPool(ctx, databaseURL(getenv))
	if err != nil {
		return nil, nil, fmt.Errorf("open the Postgres event store: %w", err)
	}
	s, closeStore, err := openLog(ctx, sc, pool, postgres.StoreConfig{Logger: log})
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	return s, func() { closeStore(); pool.Close() }, nil
}

// openLog opens the event store sc names: KurrentDB, or the Postgres
// store (configured by cfg) over pool, which stays the caller's.
func openLog(ctx context.Context, sc storeenv.Config, pool *pgxpool.Pool, cfg postgres.StoreConfig) (domain.EventStore, func(), error) {
	if sc.Kind == storeenv.KurrentDB {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		s, err := kurrentdb.Dial(dctx, sc.KurrentDBURL, sc.KurrentDBOptions(cfg.Logger))
		if err != nil {
			return nil, nil, fmt.Errorf("open the KurrentDB event store (PARLEY_EVENT_STORE=kurrentdb) at PARLEY_KURRENTDB_URL: %w", err)
		}
		return s, func() { _ = s.Close() }, nil
	}
	s := postgres.NewStore(pool, cfg)
	return s, func() { _ = s.Close() }, nil
}

// scanPage is how many events a scan of the log reads at once.
const scanPage = 5000

// scanRoomEvents reads every event of the log's room streams, in the log's
// order and scanPage at a time, and calls each with it and its room id.
// After each page it calls progress with the number of events read so
// far; it returns that number at the end.
func scanRoomEvents(ctx context.Context, s domain.AllReader, each func(roomID int64, ev domain.RecordedEvent) error, progress func(read int)) (int, error) {
	after, read := domain.Start, 0
	for ev, err := range domain.AllEvents(ctx, s, domain.ReadAllOptions{Limit: scanPage, StreamPrefix: room.StreamPrefix}) {
		if err != nil {
			return read, fmt.Errorf("read the room streams after %s: %w", after, err)
		}
		if id, ok := room.ParseStream(ev.Stream); ok {
			if err := each(id, ev); err != nil {
				return read, err
			}
		}
		read++
		if read%scanPage == 0 { // a page's end
			after = ev.Position
			progress(read)
		}
	}
	if read%scanPage != 0 || read == 0 {
		progress(read)
	}
	return read, nil
}
