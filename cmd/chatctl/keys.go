package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/cmd/internal/chatdenv"
	"github.com/parleychat/parley/cmd/internal/cli"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/audit"
	"github.com/parleychat/parley/domain/privacy"
)

// keysEnvironment is the environment of the commands that read or erase
// conversation text.
const keysEnvironment = `  PARLEY_DATA_KEY       the data keys chatd uses (or PARLEY_DATA_KEY_FILE); without
                        either, the development key chatd generated
`

// openKeys loads the data keys as chatd does (cmd/internal/chatdenv),
// opens the key table in the database at PARLEY_DATABASE_URL (whichever
// store holds the log) and checks that the keys unwrap it.
func openKeys(ctx context.Context, getenv func(string) string, stderr io.Writer) (*privacy.Keyring, *postgres.Keys, *pgxpool.Pool, error) {
	pool, err := openPool(ctx, databaseURL(getenv))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("open the key table: %w", err)
	}
	ring, keys, err := openKeysIn(ctx, pool, getenv, stderr)
	if err != nil {
		pool.Close()
		return nil, nil, nil, err
	}
	return ring, keys, pool, nil
}

// openKeysIn is openKeys on the key table in pool, which stays the
// caller's.
func openKeysIn(ctx context.Context, pool *pgxpool.Pool, getenv func(string) string, stderr io.Writer) (*privacy.Keyring, *postgres.Keys, error) {
	dk, err := chatdenv.DataKeysFromEnv(getenv)
	if err == nil {
		err = dk.Load()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("the data keys: %w", err)
	}
	if dk.DevPath != "" {
		fmt.Fprintln(stderr, "warning: "+dk.DevWarning())
	}
	keys := postgres.NewKeys(pool)
	ring, err := privacy.NewKeyring(keys, dk.KEKs, privacy.KeyringConfig{})
	if err == nil {
		err = ring.Check(ctx, keys)
	}
	if err != nil {
		return nil, nil, err
	}
	return ring, keys, nil
}

// countingStore is a store opened through privacy.Store that still counts
// events as the store below it does (projections.EventCounter: the
// rebuild's and status's progress).
type countingStore struct {
	domain.EventStore
	counter interface {
		CountEvents(ctx context.Context, after, upTo domain.Position, prefix string) (int64, error)
	}
}

// CountEvents implements projections.EventCounter.
func (c countingStore) CountEvents(ctx context.Context, after, upTo domain.Position, prefix string) (int64, error) {
	return c.counter.CountEvents(ctx, after, upTo, prefix)
}

// openRoomLog opens the event store chatd uses as chatd sees it: chained
// appends, conversation text sealed on append and opened on read. The
// raw store (openEventStore) is for what checks the stored bytes: audit.
func openRoomLog(ctx context.Context, getenv func(string) string, stderr io.Writer) (domain.EventStore, *privacy.Keyring, func(), error) {
	raw, closeStore, err := openEventStore(ctx, getenv, stderr)
	if err != nil {
		return nil, nil, nil, err
	}
	ring, _, pool, err := openKeys(ctx, getenv, stderr)
	if err != nil {
		closeStore()
		return nil, nil, nil, err
	}
	store := privacy.NewStore(audit.NewChainingStore(raw, audit.ChainOptions{}), ring)
	return store, ring, func() { pool.Close(); closeStore() }, nil
}

const keysRotateUsage = `usage: chatctl keys rotate

Rewraps every room's data key with the first of the configured data keys.
To rotate: put the new key first in PARLEY_DATA_KEY (new,old), restart
chatd (new rooms' keys are wrapped with it; old ones still unwrap with the
old), run this, then drop the old key from the list. It can be stopped and
run again; rooms stay readable throughout.

Environment:
  PARLEY_DATABASE_URL   the database holding the key table (default: the local development database)
` + keysEnvironment

// keysCommands are `chatctl keys`'s subcommands.
func keysCommands() []command {
	return []command{
		{name: "rotate", summary: "rewrap every room's data key with the first configured data key", run: runKeysRotate},
	}
}

func runKeysRotate(ctx context.Context, e runEnv, args []string) error {
	fs := cli.NewFlagSet("keys rotate")
	if err := cli.Parse(fs, args, "chatctl keys rotate", keysRotateUsage, e.stdout); err != nil {
		return helpOK(err)
	}
	if fs.NArg() > 0 {
		return cli.Usagef("chatctl keys rotate takes no arguments (got %q)", fs.Args())
	}
	ring, keys, pool, err := openKeys(ctx, e.getenv, e.stderr)
	if err != nil {
		return err
	}
	defer pool.Close()
	start := time.Now()
	p := newProgress(e.stderr, "rotate", "keys", 0)
	n, err := ring.Rotate(ctx, keys, func(seen, done int) { p.update(int64(seen), fmt.Sprintf("%d rewrapped", done)) })
	p.finish()
	if err != nil {
		return fmt.Errorf("keys rotate (%d keys rewrapped; run it again to finish): %w", n, err)
	}
	fmt.Fprintf(e.stdout, "rewrapped %d room keys with data key %s in %s; every key is now wrapped with it, so the others can be removed from PARLEY_DATA_KEY\n",
		n, ring.KEKs()[0].ID, time.Since(start).Round(time.Millisecond))
	return nil
}
