package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	goredis "github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/cmd/internal/cli"
	"github.com/parleychat/parley/cmd/internal/storeenv"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/privacy"
	"github.com/parleychat/parley/domain/room"
	"github.com/parleychat/parley/projections"
)

// projectionsEnvironment ends the projections commands' help.
const projectionsEnvironment = `Environment (as chatd reads it):
  PARLEY_DATABASE_URL   Postgres: the ChatLog, the checkpoints, and the log unless PARLEY_EVENT_STORE
                        says otherwise (default: the local development database; --database overrides it)
  PARLEY_EVENT_STORE    the log: postgres (default) or kurrentdb, with PARLEY_KURRENTDB_URL
  PARLEY_REDIS_URL      the memory's Redis (default redis://127.0.0.1:6379/0)
  PARLEY_REDIS_PREFIX   its key prefix (default parley:)
`

const projectionsHelp = `The projections are chatlog (Postgres) and memory (Redis). A checkpoint belongs
to the log it was taken from: one of another log (PARLEY_EVENT_STORE changed)
is refused; rebuild the projection against this one.

` + projectionsEnvironment

// projectionCommands are the projections subcommands.
func projectionCommands() []command {
	return []command{
		{name: "run", args: "[chatlog|memory|all]", summary: "run projections here until Ctrl-C, logging progress (default: all)", run: runProjectionsRun},
		{name: "status", summary: "each projection's checkpoint, how far behind the log it is, and why it stopped", run: runProjectionsStatus},
		{name: "rebuild", args: "chatlog|memory|all", summary: "rebuild from position zero into a shadow copy and swap it in, while chatd serves", run: runProjectionsRebuild},
		{name: "drop-old", args: "[chatlog|memory|all]", summary: "drop the old copy a rebuild kept (default: chatlog)", run: runProjectionsDropOld},
	}
}

// projectionNames are the projections chatctl knows, in order. memory is
// the Redis summary-buffer projection.
var projectionNames = []string{"chatlog", "memory"}

// selectProjections resolves a projection argument: a name or "all".
func selectProjections(arg string) ([]string, error) {
	switch arg {
	case "chatlog", "memory":
		return []string{arg}, nil
	case "all":
		return projectionNames, nil
	default:
		return nil, fmt.Errorf("unknown projection %q (want one of %s, or all)", arg, strings.Join(projectionNames, ", "))
	}
}

// projectionEnv is what the projections subcommands share: the database
// of the read models, the event store chatd uses (the same database, or
// KurrentDB), the memory's Redis and a logger.
type projectionEnv struct {
	pool  *pgxpool.Pool
	store domain.EventStore
	keys  *privacy.Keyring // the rooms' data keys: the memory is sealed with them
	kind  string           // storeenv.Postgres or storeenv.KurrentDB
	log   *slog.Logger
	redis redisSettings
	rdb   *goredis.Client // opened on first use
	close []func()
}

// openProjectionEnv connects to the read models' database, checks that
// its schema is up to date and opens the event store as chatd does
// (storeenv), whose subscriptions hand out batches of at most batch
// events (0 for the default).
func openProjectionEnv(ctx context.Context, e runEnv, dbURL string, batch int) (*projectionEnv, error) {
	sc, err := storeenv.FromEnv(e.getenv)
	if err != nil {
		return nil, fmt.Errorf("choose the event store: %w", err)
	}
	pool, err := openPool(ctx, withMinConns(dbURL))
	if err != nil {
		return nil, err
	}
	pe := &projectionEnv{pool: pool, kind: sc.Kind, log: slog.New(slog.NewTextHandler(e.stderr, nil)), redis: redisSettingsFrom(e.getenv)}
	pe.close = append(pe.close, pool.Close)
	states, err := postgres.MigrationStatus(ctx, pool)
	if err != nil {
		pe.Close()
		return nil, err
	}
	for _, s := range states {
		if s.AppliedAt.IsZero() {
			pe.Close()
			return nil, fmt.Errorf("migration %04d_%s is not applied: run `chatctl migrate up` first", s.Version, s.Name)
		}
	}
	store, closeStore, err := openLog(ctx, sc, pool, postgres.StoreConfig{Logger: pe.log, SubscriptionBatch: batch})
	if err != nil {
		pe.Close()
		return nil, err
	}
	pe.close = append(pe.close, closeStore)
	// The read models are folded from the events as chatd reads them:
	// their text opened with the rooms' data keys.
	ring, _, err := openKeysIn(ctx, pool, e.getenv, e.stderr)
	if err != nil {
		pe.Close()
		return nil, err
	}
	pe.store, pe.keys = privacy.NewStore(store, ring), ring
	if c, ok := store.(projections.EventCounter); ok {
		pe.store = countingStore{EventStore: pe.store, counter: c}
	}
	return pe, nil
}

// Close closes what the env opened, the last first.
func (e *projectionEnv) Close() {
	if e.rdb != nil {
		_ = e.rdb.Close()
	}
	for i := len(e.close) - 1; i >= 0; i-- {
		e.close[i]()
	}
}

// projectionConns is the pool size the projections commands need: a
// rebuild's swap holds its lock's connection, the swap transaction, and
// the catch-up's reader and writer at once.
const projectionConns = 8

// withMinConns sets pool_max_conns in a postgres:// URL that does not set
// it.
func withMinConns(dbURL string) string {
	u, err := url.Parse(dbURL)
	if err != nil || u.Query().Has("pool_max_conns") {
		return dbURL // openPool reports a bad URL
	}
	q := u.Query()
	q.Set("pool_max_conns", fmt.Sprint(projectionConns))
	u.RawQuery = q.Encode()
	return u.String()
}

// projectionFlags returns a subcommand's flag set with --database.
func projectionFlags(name string) (*flag.FlagSet, *string) {
	fs := cli.NewFlagSet("projections " + name)
	db := fs.String("database", "", "Postgres `URL` of the read models (default $PARLEY_DATABASE_URL, else the local development database)")
	return fs, db
}

// databaseOr is the --database flag, else PARLEY_DATABASE_URL.
func databaseOr(flagURL string, getenv func(string) string) string {
	if flagURL != "" {
		return flagURL
	}
	return databaseURL(getenv)
}

// behind counts the events of the rooms after cp up to head: exactly when
// the store counts (the Postgres store), else 0 or -2 for "some".
func (e *projectionEnv) behind(ctx context.Context, cp, head domain.Position) (int64, error) {
	if c, ok := e.store.(projections.EventCounter); ok {
		return c.CountEvents(ctx, cp, head, room.StreamPrefix)
	}
	if !cp.Less(head) {
		return 0, nil
	}
	evs, err := e.store.ReadAll(ctx, domain.ReadAllOptions{After: cp, Limit: 1, StreamPrefix: room.StreamPrefix})
	if err != nil || len(evs) == 0 || head.Less(evs[0].Position) {
		return 0, err
	}
	return -2, nil
}

// liveProjection returns the live projection called name.
func (e *projectionEnv) liveProjection(name string) (projections.Projection, error) {
	if name == "memory" {
		return e.liveMemory()
	}
	return postgres.NewChatLog(e.pool, postgres.ChatLogConfig{Keys: e.keys})
}

const projectionsRunUsage = `usage: chatctl projections run [chatlog|memory|all] [--every 10s] [--batch N]

Runs the projections here, as chatd does with PARLEY_PROJECTIONS=true, until
Ctrl-C, logging each one's progress every --every. It stops on an event a
projection can never apply, or on a checkpoint of another log.

` + projectionsEnvironment

func runProjectionsRun(ctx context.Context, e runEnv, args []string) error {
	fs, dbURL := projectionFlags("run")
	every := fs.Duration("every", 10*time.Second, "how often to log progress")
	batch := fs.Int("batch", 0, "most events applied in one transaction (default: the store's subscription batch)")
	pos, err := cli.ParseInterleaved(fs, args, "chatctl projections run", projectionsRunUsage, e.stdout)
	if err != nil {
		return helpOK(err)
	}
	if *every <= 0 || *batch < 0 {
		return cli.Usagef("projections run: --every must be positive and --batch not negative")
	}
	names := projectionNames
	switch len(pos) {
	case 0:
	case 1:
		if names, err = selectProjections(pos[0]); err != nil {
			return cli.Usagef("projections run: %w", err)
		}
	default:
		return cli.Usagef("projections run: name one projection, or all (got %q)", pos)
	}
	pe, err := openProjectionEnv(ctx, e, databaseOr(*dbURL, e.getenv), *batch)
	if err != nil {
		return err
	}
	defer pe.Close()

	g, gctx := errgroup.WithContext(ctx)
	runners := make([]*projections.Runner, len(names))
	for i, name := range names {
		p, err := pe.liveProjection(name)
		if err != nil {
			return err
		}
		runners[i] = &projections.Runner{Store: pe.store, Projection: p, Logger: pe.log}
		pe.log.Info("projection starting", "projection", name, "event_store", pe.kind)
		g.Go(func() error {
			err := runners[i].Run(gctx)
			if errors.Is(err, projections.ErrWrongLog) {
				err = fmt.Errorf("%w; rebuild it against this log: chatctl projections rebuild %s", err, name)
			}
			return err
		})
	}
	g.Go(func() error {
		reportProgress(gctx, pe, runners, *every)
		return nil
	})
	if err := g.Wait(); err != nil {
		return err
	}
	pe.log.Info("projections stopped")
	return nil
}

// reportProgress logs each runner's progress every interval until ctx
// ends.
func reportProgress(ctx context.Context, pe *projectionEnv, runners []*projections.Runner, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	prev := make([]uint64, len(runners))
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		elapsed := time.Since(last)
		last = time.Now()
		for i, r := range runners {
			st, err := r.Status(ctx)
			if err != nil {
				if ctx.Err() == nil {
					pe.log.Warn("projection status unavailable", "projection", st.Name, "error", err)
				}
				continue
			}
			behind, err := pe.behind(ctx, st.Checkpoint, st.Head)
			if err != nil {
				if ctx.Err() == nil {
					pe.log.Warn("projection lag unavailable", "projection", st.Name, "error", err)
				}
				continue
			}
			rate := float64(st.Events-prev[i]) / elapsed.Seconds()
			prev[i] = st.Events
			attrs := []any{"projection", st.Name, "state", st.State, "checkpoint", st.Checkpoint.String(), "head", st.Head.String(),
				"behind_events", behindText(behind), "lag", st.Lag.Round(time.Millisecond), "applied", st.Events, "events_per_s", int64(rate)}
			if st.LastError != "" {
				attrs = append(attrs, "last_error", st.LastError)
			}
			pe.log.Info("projection progress", attrs...)
		}
	}
}

// behindText writes a count of events behind (see projectionEnv.behind).
func behindText(n int64) string {
	switch {
	case n == -2:
		return "some"
	case n < 0:
		return "-"
	}
	return fmt.Sprint(n)
}
