package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/adapters/postgres"
)

const defaultDatabaseURL = "postgres://parley:parley@127.0.0.1:5432/parley?sslmode=disable"

// openPool connects to the database named by -database or PARLEY_DATABASE_URL.
func openPool(ctx context.Context, url string) (*pgxpool.Pool, error) {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("parse database URL: %w (set PARLEY_DATABASE_URL to a postgres:// URL)", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to Postgres: %w (is it running? `make services` starts it; PARLEY_DATABASE_URL selects another)", err)
	}
	return pool, nil
}

func databaseURL(getenv func(string) string) string {
	if u := getenv("PARLEY_DATABASE_URL"); u != "" {
		return u
	}
	return defaultDatabaseURL
}

func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dbURL := fs.String("database", "", "Postgres URL (default: $PARLEY_DATABASE_URL, else the local development database)")
	fs.Usage = func() { fmt.Fprintln(stderr, "usage: chatctl migrate up|status [-database URL]"); fs.PrintDefaults() }
	if len(args) == 0 {
		fs.Usage()
		return &exitError{code: 2, err: fmt.Errorf("migrate: say up or status")}
	}
	sub := args[0]
	switch sub {
	case "up", "status":
	case "-h", "-help", "--help", "help":
		fs.Usage()
		return nil
	default:
		fs.Usage()
		return &exitError{code: 2, err: fmt.Errorf("migrate: unknown subcommand %q (want up or status)", sub)}
	}
	if err := fs.Parse(args[1:]); err != nil {
		return parseFailure("migrate "+sub, err, stderr)
	}
	if *dbURL == "" {
		*dbURL = databaseURL(getenv)
	}
	pool, err := openPool(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	switch sub {
	case "up":
		log := slog.New(slog.NewTextHandler(stderr, nil))
		if err := postgres.Migrate(ctx, pool, log); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "schema is up to date")
		return printStatus(ctx, pool, stdout)
	default: // status
		return printStatus(ctx, pool, stdout)
	}
}

func printStatus(ctx context.Context, pool *pgxpool.Pool, stdout io.Writer) error {
	states, err := postgres.MigrationStatus(ctx, pool)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tNAME\tSTATUS")
	pending := 0
	for _, s := range states {
		status := "applied " + s.AppliedAt.UTC().Format(time.RFC3339)
		if s.AppliedAt.IsZero() {
			status = "pending"
			pending++
		}
		fmt.Fprintf(tw, "%04d\t%s\t%s\n", s.Version, s.Name, status)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if pending > 0 {
		fmt.Fprintf(stdout, "%d pending: run `chatctl migrate up`\n", pending)
	}
	return nil
}
