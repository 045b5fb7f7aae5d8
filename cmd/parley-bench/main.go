// Command parley-bench runs Parley's benchmarks. Each one measures its
// baseline in the same run, interleaving rounds, and prints medians and the
// ratio to the baseline: on a shared, noisy machine only ratios mean much.
package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/cmd/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	cli.Report(os.Stderr, "parley-bench", err)
	os.Exit(cli.ExitCode(err))
}

const usageText = `usage: parley-bench [flags] <benchmark>...

benchmarks:
  stream  the path users run: chatd (its own wiring, in a child process) answering through an OpenAI-compatible
          streaming model over HTTP, with retrieval, projections and memory, to R WebSocket clients: token latency
          (model emit → client receive), loss, question → first chunk, CPU per token of chatd, PostgreSQL and Redis,
          for 200 rooms × 10 tok/s and a sweep at 50 tok/s up to the first failing point, beside the same chatd over
          the in-memory store (relay-only). Flags before names: parley-bench -rooms 50 -sweep none stream
  connect connect → history frame vs a bare upgrader; chatd's memory per idle connection vs a bare upgrader
  store   event store appends: 1 writer, 64 writers, batches of 32, beside raw INSERTs
  rag     retrieval quality on docs/corpus (recall@4 and MRR by question set and language: hashing as
          before, BM25, and dense and hybrid when PARLEY_EMBEDDER names a model), chunk sizes by
          language, and the embedded index over 100,000 chunks: BM25, dense and hybrid search
          p50/p99 beside a naive float32 loop, dense recall@4, ingestion chunks/s
  rebuild ChatLog rebuild over 1,000,000 generated events, beside reading them with ReadAll, each over the log
          in clear and over the same log sealed under the rooms' data keys (the rebuild decrypting it)
  all     every benchmark above

Run from the repository root (the stream and connect benchmarks ingest docs/corpus).

Environment:
  PARLEY_TEST_POSTGRES_URL   the Postgres server to use (a scratch database is created and dropped; the role must
                             be allowed to create databases, and a superuser to read other processes' pg_stat_activity);
  PARLEY_DATABASE_URL        used when the former is unset
  PARLEY_BENCH_RAG_SETS      rag: the question sets to score (labelled,dev,test,off-dev,off-test; default all)
  PARLEY_EMBEDDER, PARLEY_EMBED_MODEL, PARLEY_OLLAMA_URL, PARLEY_OPENAI_URL, PARLEY_OPENAI_API_KEY
                             rag: a dense embedder to score alone and fused with BM25 (see README)
  PARLEY_LLM_PROVIDER, PARLEY_LLM_URL, PARLEY_LLM_MODEL, PARLEY_LLM_API_KEY
                             rag: a model to score the query rewrite with
  Other PARLEY_* variables reach the chatd children (e.g. PARLEY_CHATLOG_INTERVAL), except those the benchmark sets.

Flags:
`

type config struct {
	adminURL string
	getenv   func(string) string
	duration time.Duration
	rounds   int
	progress io.Writer // progress lines (stderr)
	events   int       // rebuild: events in each of its logs
	corpus   string    // the sample corpus's directory
	stream   streamConfig
	connect  connectConfig
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case dialChildCommand:
			return runDialChild(ctx, args[1:], stdout, stderr)
		case chatdChildCommand:
			return runChatdChild(ctx, getenv, stdout, stderr)
		}
	}
	fs := cli.NewFlagSet("parley-bench")
	cfg := config{progress: stderr, getenv: getenv}
	fs.DurationVar(&cfg.duration, "duration", 3*time.Second, "store: length of one measured round")
	fs.IntVar(&cfg.rounds, "rounds", 3, "rounds per side; the median is reported")
	fs.IntVar(&cfg.events, "rebuild-events", 1_000_000, "rebuild: events in each of its two logs (in clear, sealed)")
	fs.StringVar(&cfg.corpus, "corpus", "docs/corpus", "stream, connect: the sample corpus to ingest (relative to the repository root)")
	cfg.stream.register(fs)
	cfg.connect.register(fs)
	if err := cli.Parse(fs, args, "parley-bench", usageText, stdout); err != nil {
		return err
	}
	cfg.adminURL = cmp.Or(getenv("PARLEY_TEST_POSTGRES_URL"), getenv("PARLEY_DATABASE_URL"),
		"postgres://parley:parley@127.0.0.1:5432/parley?sslmode=disable")
	if cfg.rounds < 1 || cfg.duration <= 0 {
		return cli.Usagef("--rounds must be at least 1 and --duration positive")
	}
	if cfg.events < 1 {
		return cli.Usagef("-rebuild-events %d: need at least 1", cfg.events)
	}
	if err := errors.Join(cfg.stream.validate(), cfg.connect.validate()); err != nil {
		return cli.Usage(err)
	}
	names := fs.Args()
	if len(names) == 0 {
		names = []string{"all"}
	}
	benches := map[string]func(context.Context, config, io.Writer) error{
		"stream":  benchStream,
		"connect": benchConnect,
		"store":   benchStore,
		"rag":     benchRAG,
		"rebuild": benchRebuild,
	}
	order := []string{"stream", "connect", "store", "rag", "rebuild"}
	var todo []string
	for _, n := range names {
		switch {
		case n == "all":
			todo = append(todo, order...)
		case benches[n] != nil:
			todo = append(todo, n)
		default:
			return cli.Usagef("unknown benchmark %q (want %s or all; see parley-bench --help)", n, strings.Join(order, ", "))
		}
	}
	for _, n := range todo {
		if err := benches[n](ctx, cfg, stdout); err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
	}
	return nil
}

// scratchPool creates a scratch database, migrates it and returns a pool
// of at most maxConns connections to it; closeAll closes the pool and
// drops the database.
func scratchPool(ctx context.Context, adminURL string, maxConns int32) (pool *pgxpool.Pool, closeAll func(), err error) {
	dbURL, drop, err := scratchDatabase(ctx, adminURL)
	if err != nil {
		return nil, nil, err
	}
	pcfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		drop()
		return nil, nil, err
	}
	pcfg.MaxConns = maxConns
	if pool, err = pgxpool.NewWithConfig(ctx, pcfg); err != nil {
		drop()
		return nil, nil, err
	}
	if err := postgres.Migrate(ctx, pool, nil); err != nil {
		pool.Close()
		drop()
		return nil, nil, err
	}
	return pool, func() { pool.Close(); drop() }, nil
}

// scratchDatabase creates an empty database for one benchmark and returns
// its URL and a function that drops it.
func scratchDatabase(ctx context.Context, adminURL string) (string, func(), error) {
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", nil, fmt.Errorf("connect to Postgres: %w (run `make bench`, which starts it, or set PARLEY_TEST_POSTGRES_URL)", err)
	}
	defer admin.Close(context.Background())
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "parley_bench_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, fmt.Errorf("create scratch database: %w", err)
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", nil, err
	}
	u.Path = "/" + name
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, adminURL); err == nil {
			_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(ctx)
		}
	}
	return u.String(), drop, nil
}
