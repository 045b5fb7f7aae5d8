package stack

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	goredis "github.com/redis/go-redis/v9"

	"github.com/parleychat/parley/adapters/httpapi"
	"github.com/parleychat/parley/adapters/inmem"
	"github.com/parleychat/parley/adapters/jwtauth"
	"github.com/parleychat/parley/adapters/kurrentdb"
	"github.com/parleychat/parley/adapters/langchain"
	"github.com/parleychat/parley/adapters/offline"
	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/adapters/prom"
	"github.com/parleychat/parley/adapters/redis"
	"github.com/parleychat/parley/adapters/tokens"
	"github.com/parleychat/parley/adapters/userlimit"
	"github.com/parleychat/parley/adapters/webui"
	"github.com/parleychat/parley/adapters/wsapi"
	"github.com/parleychat/parley/cmd/internal/chatdenv"
	"github.com/parleychat/parley/cmd/internal/storeenv"
	"github.com/parleychat/parley/docs"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/audit"
	"github.com/parleychat/parley/domain/chat"
	"github.com/parleychat/parley/domain/memory"
	"github.com/parleychat/parley/domain/privacy"
	"github.com/parleychat/parley/domain/rag"
	"github.com/parleychat/parley/domain/room"
	"github.com/parleychat/parley/projections"
)

// MemoryStore is the EventStore value that keeps the log in memory
// (adapters/inmem): nothing survives the process. PARLEY_EVENT_STORE does
// not offer it; the benchmark sets it in code for its relay-only baseline,
// the same server with nothing durable behind it.
const MemoryStore = "memory"

// Server is chatd wired: every component, and the goroutines that run
// them. New builds it; Serve runs it until its context ends.
type Server struct {
	cfg     Config
	log     *slog.Logger
	pool    *pgxpool.Pool
	store   domain.EventStore
	closers []func() error // the event store's and the index's, in opening order
	chatlog *postgres.ChatLog
	feed    *projections.Feed     // the process's one subscription to the log
	runners []*projections.Runner // none when projections run elsewhere
	redis   *goredis.Client
	index   func(context.Context) error // the retrieval index's refresher, if it has one
	tickets *postgres.Tickets
	metrics *prom.Metrics
	hub     *wsapi.Hub
	svc     *chat.Service
	gateway *wsapi.Gateway
	limits  *userlimit.Limiter
	http    *http.Server
}

// New connects to Postgres, applies pending migrations and builds every
// component chatd runs. It starts nothing; Serve does. On an error it
// releases whatever it had opened.
func New(ctx context.Context, cfg Config, log *slog.Logger) (_ *Server, err error) {
	log.Info("chatd starting", "config", cfg)
	if cfg.DevSecret {
		log.Warn("PARLEY_JWT_SECRET is not set: using the public development secret; anyone can mint tokens. Set PARLEY_JWT_SECRET (32+ bytes) or PARLEY_JWKS_URL outside development.")
	}
	s := &Server{cfg: cfg, log: log, metrics: prom.New()}
	defer func() {
		if err != nil {
			s.close()
		}
	}()

	if s.pool, err = openPool(ctx, cfg.DatabaseURL, nil); err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = s.pool.Ping(pctx)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("connect to Postgres at %s: %w (is it running? `make services` starts it; PARLEY_DATABASE_URL selects another)", chatdenv.RedactURL(cfg.DatabaseURL), err)
	}
	if err := postgres.Migrate(ctx, s.pool, log); err != nil {
		return nil, fmt.Errorf("migrate the database: %w", err)
	}
	keys, err := s.openKeys(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	s.cfg = cfg
	subBatch, storeCheck, err := s.openStore(ctx)
	if err != nil {
		return nil, err
	}
	// Every event appended carries prev_hash and hash (chatctl audit verify).
	s.store = audit.NewChainingStore(s.store, audit.ChainOptions{TrustTypes: room.ChunkTypes()})
	// Conversation text is sealed on its way into the log, under the
	// chain (which hashes the sealed bytes), and opened on every read.
	if keys.ring != nil {
		s.store = privacy.NewStore(s.store, keys.ring)
	}
	if s.chatlog, err = postgres.NewChatLog(s.pool, postgres.ChatLogConfig{Keys: keys.chatlog}); err != nil {
		return nil, err
	}
	if s.redis, err = redis.NewClient(cfg.RedisURL); err != nil {
		return nil, fmt.Errorf("PARLEY_REDIS_URL: %w", err)
	}
	// A room whose memory vanished from Redis (flushed, restarted empty) is
	// folded again from the log, with a warning and a count.
	mem, err := redis.NewMemory(s.redis, redis.MemoryConfig{Prefix: cfg.RedisPrefix, Log: s.store, Logger: log, Keys: keys.memory,
		Rebuilt: func() { s.metrics.RoomRebuilt(redis.DefaultMemoryName) }})
	if err != nil {
		return nil, fmt.Errorf("conversation memory: %w", err)
	}
	// The hub and the projections read the log through one subscription.
	s.feed = projections.NewFeed(s.store, projections.FeedConfig{Batch: subBatch, Logger: log})
	if cfg.Projections {
		s.runners = []*projections.Runner{
			{Store: s.feed, Projection: s.chatlog, Logger: log, Interval: cfg.ChatLogInterval, FullBatch: subBatch},
			{Store: s.feed, Projection: mem, Logger: log, FullBatch: subBatch},
		}
	}
	worker, err := newMemoryWorker(cfg, s.store, log)
	if err != nil {
		return nil, err
	}
	retriever, err := s.openRetriever(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	s.tickets = postgres.NewTickets(s.pool, postgres.DefaultTicketTTL, rand.Reader, time.Now)

	// One clock-skew leeway on a token's expiry, for REST (the verifier)
	// and sockets (the gateway) alike. jwtauth reads 0 as its default and
	// any value below a second as none.
	tokenLeeway := cmp.Or(cfg.JWTLeeway, time.Nanosecond)
	verifier, err := jwtauth.New(ctx, jwtauth.Config{
		Secret: secretBytes(cfg.JWTSecret), JWKSURL: cfg.JWKSURL, Leeway: tokenLeeway,
		Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience, UserIDClaim: cfg.UserIDClaim, RoleClaim: cfg.RoleClaim, Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("JWT verifier: %w", err)
	}

	gen, err := newGenerator(cfg)
	if err != nil {
		return nil, err
	}
	s.hub = wsapi.NewHub(s.feed, log)
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	// The service appends through the hub's tap, so this process's answer
	// chunks reach its sockets without waiting for the log subscription.
	s.svc = chat.NewService(chat.Config{
		Instance: cfg.Instance, AnswerTimeout: cfg.AnswerTimeout, ShutdownGrace: cfg.ShutdownGrace, ChunkWindow: cfg.ChunkWindow,
		SweepInterval: cfg.SweepInterval, RecoverIdle: cfg.RecoverIdle,
	}, chat.Deps{Store: s.hub.Tap(s.store), Generator: gen, Retriever: retriever, Memory: worker, MemoryReader: mem, OpenAnswers: s.chatlog,
		Keys: keys.shredder, Owned: s.chatlog, Now: now, Random: rand.Reader, Logger: log, Metrics: s.metrics})

	s.limits = newLimiter(cfg, s.redis, log)
	s.gateway = wsapi.New(wsapi.Config{
		AllowedOrigins: cfg.AllowedOrigins, MaxConnsPerUser: cfg.MaxConnsPerUser, MessagesPerMinute: cfg.MessagesPerMinute,
		AuditorRole: cfg.AuditorRole, HistoryMessages: cfg.HistoryMessages, HistoryBytes: cfg.HistoryBytes,
		TokenLeeway: tokenLeeway,
	}, wsapi.Deps{
		Hub: s.hub, Auth: verifier, Tickets: s.tickets, Rooms: s.svc, Audit: s.svc,
		History: wsapi.ProjectedHistory{Base: s.chatlog.History, Stream: s.store},
		Stream:  s.store, Metrics: s.metrics, Logger: log, Limits: s.limits,
	})
	var devTokens httpapi.DevTokenIssuer
	if cfg.DevSecret { // the chat page's development login: anyone can mint these tokens anyway
		devTokens = jwtauth.DevIssuer{}
	}
	var web http.Handler
	if cfg.Web {
		page, err := webui.New(webui.Config{DevLogin: cfg.DevSecret})
		if err != nil {
			return nil, err
		}
		web = page
	}
	api := httpapi.NewServer(httpapi.Config{AuditorRole: cfg.AuditorRole, RequestsPerMinute: cfg.APIPerMinute, AllowedOrigins: cfg.AllowedOrigins}, httpapi.Deps{
		Logger: log, Verifier: verifier, Rooms: s.svc, Audit: s.svc, Erasure: s.svc, RoomLister: roomLister{s.chatlog}, Limits: s.limits,
		Messages: httpapi.StreamingMessages{Base: s.chatlog, Stream: s.store}, Tickets: s.tickets, Metrics: s.metrics, Docs: docs.FS,
		Checks: map[string]httpapi.Checker{
			"event_store": httpapi.CheckerFunc(storeCheck),
			"database":    httpapi.CheckerFunc(s.pool.Ping), // read models and tickets
			"subscription": httpapi.CheckerFunc(func(context.Context) error {
				select {
				case <-s.hub.Ready():
					return nil
				default:
					return errors.New("not subscribed to the log yet")
				}
			}),
		},
		// Without these chatd serves, worse: prompts read the conversation
		// from the log, and history the log after what the ChatLog shows.
		DegradedChecks: map[string]httpapi.Checker{
			"redis":       httpapi.CheckerFunc(func(ctx context.Context) error { return s.redis.Ping(ctx).Err() }),
			"projections": httpapi.CheckerFunc(s.projectionsStopped),
		},
		ChatWS:    s.gateway.Chat(),
		AuditWS:   s.gateway.Audit(),
		DevTokens: devTokens,
		Web:       web,
	})
	s.http = &http.Server{
		Handler:           api.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// openStore opens the event store cfg.EventStore names and returns its
// subscription batch (the ChatLog runner's FullBatch) and its readiness
// check.
func (s *Server) openStore(ctx context.Context) (int, func(context.Context) error, error) {
	switch s.cfg.EventStore {
	case storeenv.KurrentDB:
		k, err := kurrentdb.Dial(ctx, s.cfg.KurrentDBURL, s.cfg.Store.KurrentDBOptions(s.log))
		if err != nil {
			return 0, nil, fmt.Errorf("connect to KurrentDB (PARLEY_KURRENTDB_URL): %w", err)
		}
		s.store, s.closers = k, append(s.closers, k.Close)
		return k.SubscriptionBatch(), k.Check, nil // KurrentDB's check reports its reconnecting
	case MemoryStore:
		s.store = inmem.New(nil)
		return domain.DefaultReadLimit, func(context.Context) error { return nil }, nil
	}
	scfg := postgres.StoreConfig{Logger: s.log, ReadInterval: s.cfg.LogReadEvery}
	if s.cfg.ChunkCommit == "async" {
		async, err := openPool(ctx, s.cfg.DatabaseURL, map[string]string{"synchronous_commit": "off"})
		if err != nil {
			return 0, nil, err
		}
		s.closers = append(s.closers, func() error { async.Close(); return nil })
		scfg.AsyncPool, scfg.AsyncTypes = async, room.ChunkTypes()
	}
	p := postgres.NewStore(s.pool, scfg)
	s.store, s.closers = p, append(s.closers, p.Close)
	return p.SubscriptionBatch(), s.pool.Ping, nil
}

// openPool opens a pool on url with params set on every connection. A URL
// without pool_max_conns gets 32 connections: answers in many rooms append
// at once, and PostgreSQL flushes their commits together.
func openPool(ctx context.Context, url string, params map[string]string) (*pgxpool.Pool, error) {
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse PARLEY_DATABASE_URL: %w", err)
	}
	if !strings.Contains(url, "pool_max_conns") {
		pcfg.MaxConns = 32
	}
	for k, v := range params {
		pcfg.ConnConfig.RuntimeParams[k] = v
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("open PARLEY_DATABASE_URL: %w", err)
	}
	return pool, nil
}

func secretBytes(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}

func newGenerator(cfg Config) (chat.Generator, error) {
	if cfg.LLMProvider == "" {
		g, err := offline.New(offline.Config{TokenDelay: cfg.TokenDelay})
		if err != nil {
			return nil, fmt.Errorf("offline generator: %w", err)
		}
		return g, nil
	}
	g, err := langchain.NewGenerator(cfg.LLM())
	if err != nil {
		return nil, fmt.Errorf("LLM generator (PARLEY_LLM_*): %w", err)
	}
	return g, nil
}

// newMemoryWorker builds the summariser of conversation memory: the LLM
// when one is configured, else the extractive one.
func newMemoryWorker(cfg Config, store domain.EventStore, log *slog.Logger) (*memory.Worker, error) {
	counter, err := tokens.New("")
	if err != nil {
		return nil, fmt.Errorf("token counter: %w", err)
	}
	var sum memory.Summarizer
	if cfg.LLMProvider != "" {
		if sum, err = langchain.NewSummarizer(cfg.LLM()); err != nil {
			return nil, fmt.Errorf("LLM summariser (PARLEY_LLM_*): %w", err)
		}
	} else if sum, err = memory.NewExtractive(counter, memory.ExtractiveConfig{}); err != nil {
		return nil, fmt.Errorf("extractive summariser: %w", err)
	}
	w, err := memory.NewWorker(memory.Config{MaxTokenLimit: cfg.MemoryTokenLimit},
		memory.Deps{Store: store, Summarizer: sum, Counter: counter, Now: time.Now, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("conversation memory (PARLEY_MEMORY_TOKEN_LIMIT): %w", err)
	}
	return w, nil
}

// openRetriever opens the embedder and index the environment names (the
// ones chatctl ingest fills) and returns the answers' Retriever.
func (s *Server) openRetriever(ctx context.Context, cfg Config, log *slog.Logger) (chat.Retriever, error) {
	emb, err := cfg.RAG.OpenEmbedder(ctx)
	if err != nil {
		return nil, fmt.Errorf("embedder (PARLEY_EMBEDDER): %w", err)
	}
	idx, closeIdx, err := cfg.RAG.OpenIndex(ctx, emb, s.pool, log)
	if err != nil {
		return nil, fmt.Errorf("retrieval index: %w", err)
	}
	s.closers = append(s.closers, func() error { closeIdx(); return nil })
	if r, ok := idx.(interface{ Run(context.Context) error }); ok {
		s.index = r.Run
	}
	deps := rag.RetrieverDeps{Index: idx, Embedder: emb, Logger: log}
	if cfg.LLMProvider != "" && cfg.RAGRewrite {
		if deps.Rewriter, err = langchain.NewRewriter(cfg.LLM(), langchain.RewriterConfig{}); err != nil {
			return nil, fmt.Errorf("query rewriter (PARLEY_LLM_*): %w", err)
		}
	}
	// A zero floor in the configuration means none; the Retriever's zero
	// means its default, which the configuration has already applied.
	minRel := cfg.RAGMinRelevance
	if minRel == 0 {
		minRel = -1
	}
	ret, err := rag.NewRetriever(deps, rag.RetrieverConfig{Timeout: cfg.RAGTimeout, RewriteTimeout: cfg.RAGRewriteTime,
		MinRelevance: minRel, MinSimilarity: cfg.RAGMinSimilarity})
	if err != nil {
		return nil, fmt.Errorf("retriever: %w", err)
	}
	return ret, nil
}

// close releases what New opened, last opened first: the store
// before the pool its append workers write on.
func (s *Server) close() {
	for _, c := range slices.Backward(s.closers) {
		_ = c()
	}
	if s.redis != nil {
		_ = s.redis.Close()
	}
	if s.pool != nil {
		s.pool.Close()
	}
}

// roomLister lists rooms from the ChatLog read model for the REST API.
type roomLister struct{ chatlog *postgres.ChatLog }

func (l roomLister) RoomsOf(ctx context.Context, owner string, limit int) ([]httpapi.RoomSummary, error) {
	rows, err := l.chatlog.RoomsOf(ctx, owner, limit)
	if err != nil {
		return nil, err
	}
	out := make([]httpapi.RoomSummary, len(rows))
	for i, r := range rows {
		out[i] = httpapi.RoomSummary{ID: r.ID, OwnerID: r.OwnerID, Title: r.Title, CreatedAt: r.CreatedAt, Version: r.Version}
	}
	return out, nil
}
