package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/cmd/internal/cli"
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

const migrateUsage = `usage: chatctl migrate %s [--database URL]

%s

Environment:
  PARLEY_DATABASE_URL   Postgres URL (default: the local development database)
`

// migrateCommands are migrate's subcommands.
func migrateCommands() []command {
	return []command{
		{name: "up", summary: "apply pending schema migrations", run: func(ctx context.Context, e runEnv, args []string) error {
			return runMigrate(ctx, "up", "Applies the pending schema migrations, under an advisory lock, then lists them.", args, e)
		}},
		{name: "status", summary: "list the migrations and whether they are applied", run: func(ctx context.Context, e runEnv, args []string) error {
			return runMigrate(ctx, "status", "Lists the schema migrations and whether they are applied.", args, e)
		}},
	}
}

func runMigrate(ctx context.Context, sub, about string, args []string, e runEnv) error {
	fs := cli.NewFlagSet("migrate " + sub)
	dbURL := fs.String("database", "", "Postgres `URL` (default $PARLEY_DATABASE_URL, else the local development database)")
	if err := cli.Parse(fs, args, "chatctl migrate "+sub, fmt.Sprintf(migrateUsage, sub, about), e.stdout); err != nil {
		return helpOK(err)
	}
	if fs.NArg() > 0 {
		return cli.Usagef("chatctl migrate %s takes no arguments (got %q)", sub, fs.Args())
	}
	if *dbURL == "" {
		*dbURL = databaseURL(e.getenv)
	}
	pool, err := openPool(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if sub == "up" {
		log := slog.New(slog.NewTextHandler(e.stderr, nil))
		if err := postgres.Migrate(ctx, pool, log); err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, "schema is up to date")
	}
	return printStatus(ctx, pool, e.stdout)
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
