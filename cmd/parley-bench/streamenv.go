package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/adapters/document"
	"github.com/parleychat/parley/adapters/jwtauth"
	"github.com/parleychat/parley/adapters/tokens"
	"github.com/parleychat/parley/cmd/internal/ragenv"
	"github.com/parleychat/parley/domain/rag"
	"github.com/parleychat/parley/domain/rag/ragtest"
)

// streamEnv is what the chatd benchmarks share: a scratch database with
// the sample corpus ingested, a Redis of their own, the model server, and
// chatd children over them.
type streamEnv struct {
	progress io.Writer
	epoch    time.Time
	dir      string // logs of the chatd children
	// db is the database of the persisted and relay sides (the relay's
	// chatd keeps its tickets and retrieval index there), plain the
	// encryption-off side's: each persisted chatd has a log of its own,
	// as one deployment has, and is not also following the other's.
	db, plain *scratchDB
	pool      *pgxpool.Pool // db's
	redis     *privateRedis
	model     *modelServer
	secret    string
	meter     *meter
	chunks    int    // corpus chunks indexed
	retrieval string // the index and embedder chatd retrieves with
	procs     []*chatdProc
}

func newStreamEnv(ctx context.Context, cfg config) (_ *streamEnv, err error) {
	e := &streamEnv{progress: cfg.progress, epoch: time.Now()}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	if e.dir, err = os.MkdirTemp("", "parley-bench-chatd-"); err != nil {
		return nil, err
	}
	if e.db, err = e.scratch(ctx, cfg); err != nil {
		return nil, err
	}
	e.pool = e.db.pool
	if e.plain, err = e.scratch(ctx, cfg); err != nil {
		return nil, err
	}
	if _, err := e.pool.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`); err != nil {
		e.logf("pg_stat_statements is not available (%v): the statement profile is left out", err)
	}
	if e.redis, err = startRedis(ctx); err != nil {
		return nil, err
	}
	if e.model, err = startModelServer(e.epoch); err != nil {
		return nil, err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	e.secret = hex.EncodeToString(b)
	e.meter = &meter{pool: e.pool, redis: e.redis.client}
	for _, db := range []*scratchDB{e.db, e.plain} {
		if e.chunks, err = e.ingestCorpus(ctx, cfg, db.pool); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// scratchDB is a database of the benchmark's own, migrated.
type scratchDB struct {
	url, name string
	pool      *pgxpool.Pool
	drop      func() // closes pool, and drops the database unless it is kept
}

// scratch creates a scratch database, kept when the benchmark ends with
// -keep-db.
func (e *streamEnv) scratch(ctx context.Context, cfg config) (*scratchDB, error) {
	pool, drop, err := scratchPool(ctx, cfg.adminURL, 8)
	if err != nil {
		return nil, err
	}
	db := &scratchDB{pool: pool, drop: drop, name: pool.Config().ConnConfig.Database}
	if cfg.stream.keepDB {
		db.drop = pool.Close
	}
	u, err := url.Parse(cfg.adminURL)
	if err != nil {
		db.drop()
		return nil, err
	}
	u.Path = "/" + db.name
	db.url = u.String()
	e.logf("scratch database %s", db.name)
	if cfg.stream.keepDB {
		e.logf("the database stays when the benchmark ends: %s", u.Redacted())
	}
	return db, nil
}

// dbOf is the database of side's chatd.
func (e *streamEnv) dbOf(side string) *scratchDB {
	if side == sidePlaintext {
		return e.plain
	}
	return e.db
}

func (e *streamEnv) logf(format string, args ...any) {
	fmt.Fprintf(e.progress, "parley-bench: "+format+"\n", args...)
}

// close stops the chatd children, the model server and Redis, and drops
// the database.
func (e *streamEnv) close() {
	for _, p := range e.procs {
		if err := p.stop(); err != nil {
			e.logf("%v", err)
		}
	}
	if e.model != nil {
		e.model.close()
	}
	if e.redis != nil {
		e.redis.stop()
	}
	for _, db := range []*scratchDB{e.db, e.plain} {
		if db != nil {
			db.drop()
		}
	}
	if e.dir != "" {
		_ = os.RemoveAll(e.dir)
	}
}

// chatdEnv is a chatd child's environment: this process's, with chatd's
// settings for the benchmark on top — everything else at chatd's
// defaults (PARLEY_CHUNK_COMMIT=async, projections on, the ChatLog
// interval, the lexical embedder over the embedded index).
func (e *streamEnv) chatdEnv(side string) []string {
	env := os.Environ()
	for k, v := range map[string]string{
		"PARLEY_HTTP_ADDR":    "127.0.0.1:0",
		"PARLEY_DATABASE_URL": e.dbOf(side).url,
		"PARLEY_REDIS_URL":    e.redis.URL,
		"PARLEY_REDIS_PREFIX": "bench-" + side + ":",
		"PARLEY_JWT_SECRET":   e.secret,
		// A data key of the benchmark's own, so no development key is
		// generated in the home directory.
		"PARLEY_DATA_KEY":            "cGFybGV5LWJlbmNobWFyay1kYXRhLWtleS0wMTIzNDU=",
		"PARLEY_LLM_PROVIDER":        "openai",
		"PARLEY_LLM_URL":             e.model.url,
		"PARLEY_LLM_MODEL":           "bench-model",
		"PARLEY_LLM_API_KEY":         "bench-key",
		"PARLEY_INSTANCE":            "bench-" + side,
		"PARLEY_LOG_LEVEL":           "warn",
		"PARLEY_MESSAGES_PER_MINUTE": "6000", // every client asks again as soon as its answer ends
		"PARLEY_MAX_CONNS_PER_USER":  "64",
		// Connection attempts at rates no bench reaches: hundreds of
		// sockets from one address, a user reconnecting to time its history.
		"PARLEY_CONNECTS_PER_MINUTE":      "1000000",
		"PARLEY_ADDR_CONNECTS_PER_MINUTE": "1000000",
	} {
		env = append(env, k+"="+v)
	}
	switch side {
	case sideRelay:
		env = append(env, benchStoreVar+"=memory")
	case sidePlaintext:
		env = append(env, benchPlaintextVar+"=1")
	}
	return env
}

// Names of the servers: chatd as it runs (conversation text encrypted),
// the same with encryption off, and the relay-only baseline.
const (
	sidePersisted = "persisted"
	sidePlaintext = "plaintext"
	sideRelay     = "relay"
)

// startChatd starts a chatd child for side and remembers to stop it.
func (e *streamEnv) startChatd(ctx context.Context, side string) (*chatdProc, error) {
	e.logf("starting chatd (%s)", side)
	p, err := startChatd(ctx, side, e.chatdEnv(side), filepath.Join(e.dir, side+".log"))
	if err != nil {
		return nil, err
	}
	p.db = e.dbOf(side)
	e.procs = append(e.procs, p)
	return p, nil
}

// token mints an access token for user.
func (e *streamEnv) token(user string) (string, error) {
	return jwtauth.Mint([]byte(e.secret), user, 6*time.Hour, time.Now(), nil)
}

// ingestCorpus indexes the sample corpus where chatd, on its defaults,
// retrieves from (ragenv's embedder, if any, and collection over the
// embedded index), as `make corpus` does with chatctl ingest: each file
// read by document.LoadAll, split by the document splitter at its
// defaults, through rag.Ingester.
func (e *streamEnv) ingestCorpus(ctx context.Context, cfg config, pool *pgxpool.Pool) (int, error) {
	rc, err := ragenv.FromEnv(cfg.getenv)
	if err != nil {
		return 0, err
	}
	listed, err := ragtest.LoadCorpus(os.DirFS(cfg.corpus))
	if err != nil {
		return 0, fmt.Errorf("the sample corpus: %w (run from the repository root)", err)
	}
	sources := make([]string, len(listed))
	for i, d := range listed {
		sources[i] = d.Source
	}
	docs, err := document.LoadAll(cfg.corpus, sources)
	if err != nil {
		return 0, fmt.Errorf("the sample corpus: %w", err)
	}
	emb, err := rc.OpenEmbedder(ctx)
	if err != nil {
		return 0, err
	}
	idx, closeIdx, err := rc.OpenIndex(ctx, emb, pool, slog.New(slog.DiscardHandler))
	if err != nil {
		return 0, err
	}
	defer closeIdx()
	counter, err := tokens.New("")
	if err != nil {
		return 0, err
	}
	splitter, err := document.NewSplitter(counter, document.SplitterConfig{})
	if err != nil {
		return 0, err
	}
	e.retrieval = rc.IndexKind() + " index"
	if emb != nil {
		e.retrieval += ", embedder " + emb.Name()
	}
	in := &rag.Ingester{Index: idx, Embedder: emb, Splitter: splitter}
	rep, err := in.Sync(ctx, docs, rag.SyncOptions{})
	if err != nil {
		return 0, fmt.Errorf("ingest the sample corpus: %w", err)
	}
	return rep.Chunks, nil
}

// settings returns PostgreSQL's settings that bear on appends.
func (e *streamEnv) settings(ctx context.Context) (string, error) {
	var out []string
	for _, name := range []string{"server_version", "fsync", "synchronous_commit", "wal_writer_delay", "shared_buffers"} {
		var v string
		if err := e.pool.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v); err != nil {
			return "", err
		}
		out = append(out, name+"="+v)
	}
	return strings.Join(out, ", "), nil
}
