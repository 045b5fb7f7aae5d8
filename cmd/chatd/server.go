package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	goredis "github.com/redis/go-redis/v9"

	"github.com/parleychat/parley/adapters/httpapi"
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
	"github.com/parleychat/parley/domain/rag"
	"github.com/parleychat/parley/domain/room"
	"github.com/parleychat/parley/projections"
)

// server is chatd wired: every component, and the goroutines that run them.
type server struct {
	cfg     Config
	log     *slog.Logger
	pool    *pgxpool.Pool
	store   domain.EventStore
	closers []func() error // the event store's
	chatlog *postgres.ChatLog
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

// newServer connects to Postgres, applies pending migrations and builds
// every component. It starts nothing; serve does.
func newServer(ctx context.Context, cfg Config, log *slog.Logger) (*server, error) {
	log.Info("chatd starting", "config", cfg)
	if cfg.DevSecret {
		log.Warn("PARLEY_JWT_SECRET is not set: using the public development secret; anyone can mint tokens. Set PARLEY_JWT_SECRET (32+ bytes) or PARLEY_JWKS_URL outside development.")
	}
	s := &server{cfg: cfg, log: log, metrics: prom.New()}

	pool, err := openPool(ctx, cfg.DatabaseURL, nil)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = pool.Ping(pctx)
	cancel()
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to Postgres at %s: %w (is it running? `make services` starts it; PARLEY_DATABASE_URL selects another)", chatdenv.RedactURL(cfg.DatabaseURL), err)
	}
	s.pool = pool
	if err := postgres.Migrate(ctx, pool, log); err != nil {
		s.close()
		return nil, fmt.Errorf("migrate the database: %w", err)
	}
	var subBatch int // the store's subscription batch: the ChatLog runner's FullBatch
	storeCheck := pool.Ping
	switch cfg.EventStore {
	case storeenv.KurrentDB:
		k, err := kurrentdb.Dial(ctx, cfg.KurrentDBURL, cfg.Store.KurrentDBOptions(log))
		if err != nil {
			s.close()
			return nil, fmt.Errorf("connect to KurrentDB (PARLEY_KURRENTDB_URL): %w", err)
		}
		s.store, s.closers = k, append(s.closers, k.Close)
		subBatch, storeCheck = k.SubscriptionBatch(), k.Check
	default:
		scfg := postgres.StoreConfig{Logger: log}
		if cfg.ChunkCommit == "async" {
			async, err := openPool(ctx, cfg.DatabaseURL, map[string]string{"synchronous_commit": "off"})
			if err != nil {
				s.close()
				return nil, err
			}
			s.closers = append(s.closers, func() error { async.Close(); return nil })
			scfg.AsyncPool, scfg.AsyncTypes = async, []string{room.TypeAnswerChunk}
		}
		p := postgres.NewStore(pool, scfg)
		s.store, s.closers = p, append(s.closers, p.Close)
		subBatch = p.SubscriptionBatch()
	}
	// Every event appended carries prev_hash and hash (chatctl audit verify).
	s.store = audit.NewChainingStore(s.store, audit.ChainOptions{TrustTypes: []string{room.TypeAnswerChunk}})
	if s.chatlog, err = postgres.NewChatLog(pool, postgres.ChatLogConfig{}); err != nil {
		s.close()
		return nil, err
	}
	if s.redis, err = redis.NewClient(cfg.RedisURL); err != nil {
		s.close()
		return nil, fmt.Errorf("PARLEY_REDIS_URL: %w", err)
	}
	// A room whose memory vanished from Redis (flushed, restarted empty) is
	// folded again from the log, with a warning and a count.
	mem, err := redis.NewMemory(s.redis, redis.MemoryConfig{Prefix: cfg.RedisPrefix, Log: s.store, Logger: log,
		Rebuilt: func() { s.metrics.RoomRebuilt(redis.DefaultMemoryName) }})
	if err != nil {
		s.close()
		return nil, fmt.Errorf("conversation memory: %w", err)
	}
	if cfg.Projections {
		s.runners = []*projections.Runner{
			{Store: s.store, Projection: s.chatlog, Logger: log, Interval: cfg.ChatLogInterval, FullBatch: subBatch},
			{Store: s.store, Projection: mem, Logger: log},
		}
	}
	worker, err := newMemoryWorker(cfg, s.store, log)
	if err != nil {
		s.close()
		return nil, err
	}
	retriever, err := s.openRetriever(ctx, cfg, log)
	if err != nil {
		s.close()
		return nil, err
	}
	s.tickets = postgres.NewTickets(pool, postgres.DefaultTicketTTL, rand.Reader, time.Now)

	// One clock-skew leeway on a token's expiry, for REST (the verifier)
	// and sockets (the gateway) alike. jwtauth reads 0 as its default and
	// any value below a second as none.
	tokenLeeway := cmp.Or(cfg.JWTLeeway, time.Nanosecond)
	verifier, err := jwtauth.New(ctx, jwtauth.Config{
		Secret: secretBytes(cfg.JWTSecret), JWKSURL: cfg.JWKSURL, Leeway: tokenLeeway,
		Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience, UserIDClaim: cfg.UserIDClaim, RoleClaim: cfg.RoleClaim, Logger: log,
	})
	if err != nil {
		s.close()
		return nil, fmt.Errorf("JWT verifier: %w", err)
	}

	gen, err := newGenerator(cfg)
	if err != nil {
		s.close()
		return nil, err
	}
	s.hub = wsapi.NewHub(s.store, log)
	// The service appends through the hub's tap, so this process's answer
	// chunks reach its sockets without waiting for the log subscription.
	s.svc = chat.NewService(chat.Config{
		Instance: cfg.Instance, AnswerTimeout: cfg.AnswerTimeout, ShutdownGrace: cfg.ShutdownGrace,
		SweepInterval: cfg.SweepInterval, RecoverIdle: cfg.RecoverIdle,
	}, chat.Deps{Store: s.hub.Tap(s.store), Generator: gen, Retriever: retriever, Memory: worker, MemoryReader: mem, OpenAnswers: s.chatlog,
		Now: time.Now, Random: rand.Reader, Logger: log, Metrics: s.metrics})

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
			s.close()
			return nil, err
		}
		web = page
	}
	api := httpapi.NewServer(httpapi.Config{AuditorRole: cfg.AuditorRole, RequestsPerMinute: cfg.APIPerMinute, AllowedOrigins: cfg.AllowedOrigins}, httpapi.Deps{
		Logger: log, Verifier: verifier, Rooms: s.svc, Audit: s.svc, RoomLister: roomLister{s.chatlog}, Limits: s.limits,
		Messages: s.chatlog, Tickets: s.tickets, Metrics: s.metrics, Docs: docs.FS,
		Checks: map[string]httpapi.Checker{
			"event_store": httpapi.CheckerFunc(storeCheck), // KurrentDB's reports its reconnecting
			"database":    httpapi.CheckerFunc(pool.Ping),  // read models and tickets
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

// serve runs chatd until ctx ends, then shuts down: it stops accepting,
// lets streaming answers finish for ShutdownGrace and fails the rest (their
// terminal events written), delivers those events, closes sockets with 1001
// and waits for every goroutine it started. ready, when not nil, is called
// with the listening address once chatd accepts connections.
func (s *server) serve(ctx context.Context, ready func(addr net.Addr)) error {
	defer s.close()
	ln, err := net.Listen("tcp", s.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (set PARLEY_HTTP_ADDR to a free address)", s.cfg.HTTPAddr, err)
	}

	// bg runs until the very end: the hub must deliver the answers' last
	// events while the service drains. svcCtx ends first.
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBG()
	svcCtx, stopSvc := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSvc()
	var wg sync.WaitGroup
	defer wg.Wait()
	fatal := make(chan error, 4)
	goRun := func(name string, run func(context.Context) error, ctx context.Context) {
		wg.Go(func() {
			if err := run(ctx); err != nil && ctx.Err() == nil {
				fatal <- fmt.Errorf("%s stopped: %w", name, err)
			}
		})
	}

	goRun("log subscription", s.hub.Run, bg)
	goRun("connection leases", s.limits.Run, bg)
	for _, r := range s.runners {
		// A projection that stops (an event it cannot decode) does not stop
		// chatd: it serves on, and /readyz reports it (degraded).
		wg.Go(func() {
			if err := r.Run(bg); err != nil && bg.Err() == nil {
				s.log.Error("projection stopped; chatd serves on without it (see /readyz, and chatctl projections status)",
					"projection", r.Projection.Name(), "error", err)
			}
		})
	}
	if len(s.runners) > 0 {
		wg.Go(func() { s.reportLag(bg) })
	}
	if s.index != nil {
		goRun("retrieval index refresh", s.index, bg)
	}
	wg.Go(func() { s.sweepTickets(bg) })
	svcDone := make(chan struct{})
	wg.Go(func() {
		defer close(svcDone)
		_ = s.svc.Run(svcCtx)
	})

	select {
	case <-s.hub.Ready():
	case err := <-fatal:
		return err
	case <-ctx.Done():
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	n, err := s.svc.RecoverInterrupted(rctx, s.cfg.RecoverIdle)
	cancel()
	if err != nil {
		s.log.Error("recovering interrupted answers failed; they stay open until the next start", "error", err)
	} else if n > 0 {
		s.log.Info("failed answers interrupted by a crash", "answers", n)
	}

	httpDone := make(chan error, 1)
	go func() { httpDone <- s.http.Serve(ln) }() // owned: serve waits for httpDone below
	s.log.Info("chatd listening", "addr", ln.Addr().String())
	if ready != nil {
		ready(ln.Addr())
	}

	var runErr error
	select {
	case <-ctx.Done():
		s.log.Info("shutting down")
	case runErr = <-fatal:
		s.log.Error("shutting down after a failure", "error", runErr)
	case err := <-httpDone:
		runErr = fmt.Errorf("http server: %w", err)
		httpDone <- nil
	}

	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	// 1. Stop accepting; REST requests in flight finish.
	if err := s.http.Shutdown(sctx); err != nil {
		s.log.Warn("http shutdown", "error", err)
	}
	<-httpDone
	// 2. Answers finish within the grace period or are failed.
	stopSvc()
	select {
	case <-svcDone:
	case <-sctx.Done():
		s.log.Error("answers did not end before PARLEY_SHUTDOWN_TIMEOUT")
	}
	// 3. Their last events reach the sockets, which then close with 1001.
	if head, err := s.store.HeadPosition(sctx); err == nil {
		if err := s.hub.WaitFor(sctx, head); err != nil {
			s.log.Warn("shutdown: not every event reached the sockets", "error", err)
		}
	}
	if err := s.gateway.Shutdown(sctx); err != nil {
		s.log.Warn("shutdown: sockets did not close in time", "error", err)
	}
	// 4. Background work stops; deferred wg.Wait waits for it.
	stopBG()
	s.log.Info("chatd stopped")
	return runErr
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
func (s *server) openRetriever(ctx context.Context, cfg Config, log *slog.Logger) (chat.Retriever, error) {
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

// close releases what newServer opened, last opened first: the store
// before the pool its append workers write on.
func (s *server) close() {
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

func (s *server) reportLag(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, r := range s.runners {
			if st, err := r.Status(ctx); err == nil {
				s.metrics.SetProjectionLag(st.Name, st.Lag)
			}
		}
	}
}

func (s *server) sweepTickets(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := s.tickets.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("sweeping expired tickets failed", "error", err)
		}
	}
}

// projectionsStopped is the readiness check of the projections this
// process runs: an error naming those stopped by an event they cannot
// apply.
func (s *server) projectionsStopped(ctx context.Context) error {
	var stopped []string
	for _, r := range s.runners {
		if st, err := r.Status(ctx); err == nil && st.State == projections.StateFailed {
			stopped = append(stopped, st.Name+": "+st.LastError)
		}
	}
	if len(stopped) > 0 {
		return fmt.Errorf("stopped: %s", strings.Join(stopped, "; "))
	}
	return nil
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
