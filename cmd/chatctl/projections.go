package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	goredis "github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
	"github.com/parleychat/parley/projections"
)

const projectionsUsage = `usage: chatctl projections <subcommand> [flags]

subcommands:
  run [chatlog|memory|all]      run projections here until Ctrl-C, logging progress (default: all)
  status                        each projection's checkpoint, the log's head, how far behind it is,
                                and why it stopped; exits 1 when one has an error
  rebuild chatlog|memory|all [--dry-run] [--drop-old] [--batch N] [--lock-timeout D]
                                rebuild from position zero into shadow tables, catch up with the log,
                                then swap them in while chatd keeps serving; Ctrl-C stops it and a
                                rerun resumes. --dry-run compares with the live read model instead
                                and changes nothing (exits 1 when they differ); --drop-old drops the
                                old copy after the swap (and one left by an earlier rebuild)
  drop-old [chatlog|memory|all] drop the old copy a rebuild kept (default: chatlog)

flags (any subcommand):
  -database URL                 Postgres URL (default $PARLEY_DATABASE_URL, else the local database)

The memory projection lives in Redis: $PARLEY_REDIS_URL (default redis://127.0.0.1:6379/0), keys
under $PARLEY_REDIS_PREFIX (default parley:), as chatd has them.
`

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

func runProjections(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, projectionsUsage)
		return &exitError{code: 2, err: errors.New("projections: say run, status, rebuild or drop-old")}
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "run":
		return runProjectionsRun(ctx, args, getenv, stderr)
	case "status":
		return runProjectionsStatus(ctx, args, getenv, stdout, stderr)
	case "rebuild":
		return runProjectionsRebuild(ctx, args, getenv, stdout, stderr)
	case "drop-old":
		return runProjectionsDropOld(ctx, args, getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, projectionsUsage)
		return nil
	default:
		fmt.Fprint(stderr, projectionsUsage)
		return &exitError{code: 2, err: fmt.Errorf("projections: unknown subcommand %q", sub)}
	}
}

// parseInterleaved parses flags that may come before, between or after
// the positional arguments, and returns the positional ones. Its error is
// fs.Parse's, for parseFailure.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// projectionEnv is what the projections subcommands share: the database,
// the event store over it and a logger.
type projectionEnv struct {
	pool  *pgxpool.Pool
	store *postgres.Store
	log   *slog.Logger
	redis redisSettings   // where the memory lives (withRedis)
	rdb   *goredis.Client // opened on first use
}

// openProjectionEnv connects, checks that the schema is up to date and
// starts the store, whose subscriptions hand out batches of at most batch
// events (0 for the default).
func openProjectionEnv(ctx context.Context, dbURL string, batch int, stderr io.Writer) (*projectionEnv, func(), error) {
	pool, err := openPool(ctx, withMinConns(dbURL))
	if err != nil {
		return nil, nil, err
	}
	states, err := postgres.MigrationStatus(ctx, pool)
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	for _, s := range states {
		if s.AppliedAt.IsZero() {
			pool.Close()
			return nil, nil, fmt.Errorf("migration %04d_%s is not applied: run `chatctl migrate up` first", s.Version, s.Name)
		}
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	store := postgres.NewStore(pool, postgres.StoreConfig{Logger: log, SubscriptionBatch: batch})
	return &projectionEnv{pool: pool, store: store, log: log}, func() { store.Close(); pool.Close() }, nil
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

// newFlagSet returns a subcommand's flag set with -database.
func newFlagSet(name string, stderr io.Writer, getenv func(string) string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("projections "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, projectionsUsage)
		fmt.Fprintf(stderr, "\nflags of projections %s:\n", name)
		fs.PrintDefaults()
	}
	db := fs.String("database", databaseURL(getenv), "Postgres URL")
	return fs, db
}

// liveProjection returns the live projection called name.
func (e *projectionEnv) liveProjection(name string) (projections.Projection, error) {
	switch name {
	case "chatlog":
		return postgres.NewChatLog(e.pool, postgres.ChatLogConfig{})
	case "memory":
		return e.liveMemory()
	}
	return nil, fmt.Errorf("unknown projection %q", name)
}

func runProjectionsRun(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs, dbURL := newFlagSet("run", stderr, getenv)
	every := fs.Duration("every", 10*time.Second, "how often to log progress")
	batch := fs.Int("batch", 0, "most events applied in one transaction (default 1000)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return parseFailure("projections run", err, stderr)
	}
	if *every <= 0 || *batch < 0 {
		return &exitError{code: 2, err: errors.New("projections run: -every must be positive and -batch not negative")}
	}
	names := projectionNames
	switch len(pos) {
	case 0:
	case 1:
		if names, err = selectProjections(pos[0]); err != nil {
			return &exitError{code: 2, err: fmt.Errorf("projections run: %w", err)}
		}
	default:
		return &exitError{code: 2, err: fmt.Errorf("projections run: name one projection, or all (got %q)", pos)}
	}
	env, closeEnv, err := openProjectionEnv(ctx, *dbURL, *batch, stderr)
	if err != nil {
		return err
	}
	defer env.withRedis(getenv, closeEnv)()

	g, gctx := errgroup.WithContext(ctx)
	runners := make([]*projections.Runner, len(names))
	for i, name := range names {
		p, err := env.liveProjection(name)
		if err != nil {
			return err
		}
		runners[i] = &projections.Runner{Store: env.store, Projection: p, Logger: env.log}
		env.log.Info("projection starting", "projection", name)
		g.Go(func() error { return runners[i].Run(gctx) })
	}
	g.Go(func() error {
		reportProgress(gctx, env, runners, *every)
		return nil
	})
	if err := g.Wait(); err != nil {
		return err
	}
	env.log.Info("projections stopped")
	return nil
}

// reportProgress logs each runner's progress every interval until ctx
// ends.
func reportProgress(ctx context.Context, env *projectionEnv, runners []*projections.Runner, every time.Duration) {
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
					env.log.Warn("projection status unavailable", "projection", st.Name, "error", err)
				}
				continue
			}
			behind, err := env.store.CountEvents(ctx, st.Checkpoint, st.Head, room.StreamPrefix)
			if err != nil {
				if ctx.Err() == nil {
					env.log.Warn("projection lag unavailable", "projection", st.Name, "error", err)
				}
				continue
			}
			rate := float64(st.Events-prev[i]) / elapsed.Seconds()
			prev[i] = st.Events
			attrs := []any{"projection", st.Name, "state", st.State, "checkpoint", st.Checkpoint.String(), "head", st.Head.String(),
				"behind_events", behind, "lag", st.Lag.Round(time.Millisecond), "applied", st.Events, "events_per_s", int64(rate)}
			if st.LastError != "" {
				attrs = append(attrs, "last_error", st.LastError)
			}
			env.log.Info("projection progress", attrs...)
		}
	}
}

// projectionRow is one line of `projections status`.
type projectionRow struct {
	postgres.Checkpoint
	found  bool  // it has a checkpoint row
	behind int64 // events of its streams after its checkpoint, up to the head; -1 when it does not apply
	role   string
}

func runProjectionsStatus(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs, dbURL := newFlagSet("status", stderr, getenv)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return parseFailure("projections status", err, stderr)
	}
	if len(pos) > 0 {
		return &exitError{code: 2, err: fmt.Errorf("projections status takes no arguments (got %q)", pos)}
	}
	env, closeEnv, err := openProjectionEnv(ctx, *dbURL, 0, stderr)
	if err != nil {
		return err
	}
	defer env.withRedis(getenv, closeEnv)()
	rows, head, err := projectionStatus(ctx, env)
	if err != nil {
		return err
	}
	return printProjectionStatus(stdout, rows, head)
}

// projectionStatus reads every projection's checkpoint, with the log's
// head and how far behind it each is.
func projectionStatus(ctx context.Context, env *projectionEnv) ([]projectionRow, domain.Position, error) {
	head, err := env.store.HeadPosition(ctx)
	if err != nil {
		return nil, head, err
	}
	cps, err := postgres.ListCheckpoints(ctx, env.pool)
	if err != nil {
		return nil, head, err
	}
	byName := map[string]postgres.Checkpoint{}
	for _, c := range cps {
		byName[c.Name] = c
	}
	var rows []projectionRow
	// The live projections stored in Postgres come first, with or without
	// a checkpoint yet, then the others (shadows of rebuilds, old copies).
	for _, name := range []string{postgres.DefaultChatLogName} {
		c, ok := byName[name]
		c.Name = name
		rows = append(rows, projectionRow{Checkpoint: c, found: ok, role: "live"})
		delete(byName, name)
	}
	for _, c := range cps {
		if _, ok := byName[c.Name]; !ok {
			continue
		}
		role := "other"
		switch {
		case strings.HasSuffix(c.Name, "_old"):
			role = "old"
		case strings.HasSuffix(c.Name, "_next"), strings.HasSuffix(c.Name, "_dryrun"):
			role = "shadow"
		}
		rows = append(rows, projectionRow{Checkpoint: c, found: true, role: role})
	}
	for i := range rows {
		rows[i].behind = -1
		if rows[i].role == "old" {
			continue
		}
		if rows[i].behind, err = env.store.CountEvents(ctx, rows[i].Position, head, room.StreamPrefix); err != nil {
			return nil, head, err
		}
	}
	mem, err := memoryStatus(ctx, env, head)
	if err != nil {
		return nil, head, err
	}
	return append(rows, mem...), head, nil
}

// printProjectionStatus writes the status table, then the errors in full;
// it returns an error when a projection has one.
func printProjectionStatus(w io.Writer, rows []projectionRow, head domain.Position) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROJECTION\tCHECKPOINT\tHEAD\tBEHIND\tUPDATED\tSTATE")
	var failing []string
	for _, r := range rows {
		behind, updated := "-", "-"
		if r.behind >= 0 {
			behind = fmt.Sprint(r.behind)
		}
		if r.found && !r.UpdatedAt.IsZero() { // Redis keeps no time
			updated = r.UpdatedAt.Format(time.RFC3339)
		}
		var state string
		switch {
		case r.Stopped:
			state = "STOPPED at position " + r.StoppedAt.String()
			failing = append(failing, fmt.Sprintf("%s: stopped at position %s: %s", r.Name, r.StoppedAt, r.LastError))
		case r.LastError != "" && r.LastErrorAt.IsZero():
			state = "ERROR (retrying)"
			failing = append(failing, fmt.Sprintf("%s: error: %s", r.Name, r.LastError))
		case r.LastError != "":
			state = "ERROR (retrying)"
			failing = append(failing, fmt.Sprintf("%s: error since %s: %s", r.Name, r.LastErrorAt.Format(time.RFC3339), r.LastError))
		case r.role == "old":
			state = "old copy kept by a rebuild (`chatctl projections drop-old` drops it)"
		case r.role == "shadow":
			state = "rebuild in progress or interrupted (rerun it to resume)"
		case !r.found:
			state = "never run"
		case r.behind == 0:
			state = "caught up"
		default:
			state = "behind"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Position, head, behind, updated, state)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(failing) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	for _, f := range failing {
		fmt.Fprintln(w, f)
	}
	return &exitError{code: 1, err: fmt.Errorf("%d projection(s) in error", len(failing))}
}

func runProjectionsDropOld(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs, dbURL := newFlagSet("drop-old", stderr, getenv)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return parseFailure("projections drop-old", err, stderr)
	}
	arg := "chatlog"
	if len(pos) > 1 {
		return &exitError{code: 2, err: fmt.Errorf("projections drop-old: name one projection, or all (got %q)", pos)}
	}
	if len(pos) == 1 {
		arg = pos[0]
	}
	names, err := selectProjections(arg)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("projections drop-old: %w", err)}
	}
	env, closeEnv, err := openProjectionEnv(ctx, *dbURL, 0, stderr)
	if err != nil {
		return err
	}
	defer env.withRedis(getenv, closeEnv)()
	for _, name := range names {
		t, err := env.rebuildTarget(name, rebuildOptions{})
		if err != nil {
			return err
		}
		dropped, err := t.DropOld(ctx)
		if err != nil {
			return err
		}
		if dropped {
			fmt.Fprintf(stdout, "%s: dropped the old copy\n", name)
		} else {
			fmt.Fprintf(stdout, "%s: no old copy to drop\n", name)
		}
	}
	return nil
}
