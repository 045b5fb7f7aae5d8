// Package chatdenv reads chatd's configuration from its environment (the
// PARLEY_* variables; see README.md) and checks it, reporting every
// problem at once, one a line. chatd parses it at start, with its flags
// over it; `chatctl checkconfig` checks the same environment without
// starting anything.
package chatdenv

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/parleychat/parley/adapters/httpapi"
	"github.com/parleychat/parley/adapters/jwtauth"
	"github.com/parleychat/parley/adapters/langchain"
	"github.com/parleychat/parley/adapters/origins"
	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/adapters/redis"
	"github.com/parleychat/parley/cmd/internal/ragenv"
	"github.com/parleychat/parley/cmd/internal/storeenv"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/chat"
	"github.com/parleychat/parley/domain/rag"
)

// DefaultDatabaseURL is the database .ci/services creates.
const DefaultDatabaseURL = "postgres://parley:parley@127.0.0.1:5432/parley?sslmode=disable"

// Config is chatd's whole configuration, read once from the environment
// (FromEnv) and chatd's flags (a flag wins over its variable), and checked
// (Check) before anything starts.
type Config struct {
	HTTPAddr     string          // PARLEY_HTTP_ADDR, --addr
	DatabaseURL  string          // PARLEY_DATABASE_URL, --database: read models, tickets, and the log unless EventStore says otherwise
	EventStore   string          // PARLEY_EVENT_STORE: postgres (default) or kurrentdb (see cmd/internal/storeenv); stack.MemoryStore only from code
	ChunkCommit  string          // PARLEY_CHUNK_COMMIT: async (default) or sync: how answer chunks are committed in Postgres
	KurrentDBURL string          // PARLEY_KURRENTDB_URL: esdb://host:2113?tls=false
	Store        storeenv.Config // PARLEY_EVENT_STORE, PARLEY_KURRENTDB_*
	ChunkWindow  time.Duration   // PARLEY_CHUNK_WINDOW: how long a fast model's delta may wait to share a chunk (chat.Config.ChunkWindow); 0s never
	LogReadEvery time.Duration   // PARLEY_LOG_READ_INTERVAL: least time between two reads of the Postgres log by this process's subscription (postgres.StoreConfig.ReadInterval)
	Instance     string          // PARLEY_INSTANCE, --instance: names this process in AnswerStarted (default host:port, set by Check)

	JWTSecret   string        // PARLEY_JWT_SECRET (never a flag: flags show up in ps)
	JWKSURL     string        // PARLEY_JWKS_URL
	JWTIssuer   string        // PARLEY_JWT_ISSUER
	JWTAudience string        // PARLEY_JWT_AUDIENCE
	UserIDClaim string        // PARLEY_JWT_USER_ID_CLAIM: the user id's claim (default user_id in HS256 tokens, sub in JWKS ones)
	RoleClaim   string        // PARLEY_JWT_ROLE_CLAIM: the claim listing a user's roles (default "roles")
	JWTLeeway   time.Duration // PARLEY_JWT_LEEWAY: clock skew tolerated past a token's exp, by REST and sockets alike
	AuditorRole string        // PARLEY_AUDITOR_ROLE: the role that may read any room, read-only (default "auditor")
	DevSecret   bool          // JWTSecret is the public development secret (set by Check)

	AllowedOrigins    origins.List  // PARLEY_ALLOWED_ORIGINS, comma-separated: other sites' pages that may use the API and sockets
	MaxConnsPerUser   int           // PARLEY_MAX_CONNS_PER_USER
	MessagesPerMinute float64       // PARLEY_MESSAGES_PER_MINUTE
	APIPerMinute      float64       // PARLEY_API_REQUESTS_PER_MINUTE: a user's /api requests (bursts of a quarter of it)
	ConnectsPerMinute float64       // PARLEY_CONNECTS_PER_MINUTE: a user's WebSocket connection attempts (bursts of a quarter)
	AddrConnects      float64       // PARLEY_ADDR_CONNECTS_PER_MINUTE: connection attempts from one address (bursts of a quarter)
	LimitLeaseTTL     time.Duration // PARLEY_LIMIT_LEASE_TTL: a dead replica's connections stop counting after it

	LLMProvider string        // PARLEY_LLM_PROVIDER: "" (offline), ollama, openai
	LLMURL      string        // PARLEY_LLM_URL
	LLMModel    string        // PARLEY_LLM_MODEL
	LLMAPIKey   string        // PARLEY_LLM_API_KEY
	TokenDelay  time.Duration // PARLEY_OFFLINE_TOKEN_DELAY: pacing of the offline generator

	AnswerTimeout   time.Duration // PARLEY_ANSWER_TIMEOUT
	ShutdownGrace   time.Duration // PARLEY_SHUTDOWN_GRACE: how long answers may finish on shutdown
	ShutdownTimeout time.Duration // PARLEY_SHUTDOWN_TIMEOUT: the whole shutdown's bound
	RecoverIdle     time.Duration // PARLEY_RECOVER_IDLE: another process's open answer idle this long is failed (at start and by the sweeper)
	SweepInterval   time.Duration // PARLEY_SWEEP_INTERVAL: how often the sweeper looks for answers left open
	HistoryMessages int           // PARLEY_HISTORY_MESSAGES: the history frame's newest messages, at most
	HistoryBytes    int           // PARLEY_HISTORY_BYTES: and at most this many bytes of them

	Projections     bool          // PARLEY_PROJECTIONS, --projections: run the ChatLog and memory projections in this process
	ChatLogInterval time.Duration // PARLEY_CHATLOG_INTERVAL: the ChatLog projection applies a live log at most this often

	RedisURL         string        // PARLEY_REDIS_URL: conversation memory's read model
	RedisPrefix      string        // PARLEY_REDIS_PREFIX
	MemoryTokenLimit int           // PARLEY_MEMORY_TOKEN_LIMIT: ConversationSummaryBufferMemory's max_token_limit
	RAG              ragenv.Config // PARLEY_EMBEDDER, PARLEY_QDRANT_URL, ... (see cmd/internal/ragenv)
	RAGTimeout       time.Duration // PARLEY_RAG_TIMEOUT: one retrieval's bound
	RAGMinRelevance  float64       // PARLEY_RAG_MIN_RELEVANCE: the BM25 floor, a share of a question's attainable score
	RAGMinSimilarity float64       // PARLEY_RAG_MIN_SIMILARITY: the dense floor, a cosine similarity
	RAGRewrite       bool          // PARLEY_RAG_REWRITE: rewrite questions into the corpus languages with the LLM, when one is configured
	RAGRewriteTime   time.Duration // PARLEY_RAG_REWRITE_TIMEOUT: the rewrite's bound
	LogLevel         string        // PARLEY_LOG_LEVEL: debug, info, warn, error
	DataKeys         DataKeys      // PARLEY_DATA_KEY, PARLEY_DATA_KEY_FILE: the KEKs wrapping rooms' data keys (see DataKeys)
	Retention        time.Duration // PARLEY_RETENTION: rooms idle longer are erased (e.g. 365d); zero keeps them
	RetentionEvery   time.Duration // PARLEY_RETENTION_INTERVAL: how often the retention job looks for idle rooms (default 1h)
	Web              bool          // PARLEY_WEB: serve the chat page at / (default true)

	// Plaintext turns the encryption of conversation text off. No variable
	// or flag sets it: only the benchmark does, in code, for its
	// encryption-off side; chatd always encrypts.
	Plaintext bool
	// Now is the clock of the chat service: the time its events carry,
	// and the time retention counts idleness back from. Nil is time.Now;
	// no variable or flag sets it: only tests do, in code, to let a room
	// idle past the retention without waiting for it.
	Now func() time.Time
}

// FromEnv reads the configuration from the environment, and returns every
// problem it found reading it (a duration that is not one, ...); Check
// finds the others once flags have been applied.
func FromEnv(getenv func(string) string) (Config, []error) {
	env := func(name, def string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return def
	}
	var problems []error
	dur := func(name string, def time.Duration) time.Duration {
		v := env(name, "")
		if v == "" {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			problems = append(problems, fmt.Errorf("%s=%q is not a duration (write it like 90s or 2m)", name, v))
			return def
		}
		return d
	}
	boolean := func(name string, def bool) bool {
		v := env(name, "")
		if v == "" {
			return def
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			problems = append(problems, fmt.Errorf("%s=%q is not a boolean (true or false)", name, v))
			return def
		}
		return b
	}
	number := func(name string, def float64) float64 {
		v := env(name, "")
		if v == "" {
			return def
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			problems = append(problems, fmt.Errorf("%s=%q must be a positive number", name, v))
			return def
		}
		return f
	}

	cfg := Config{
		HTTPAddr:          env("PARLEY_HTTP_ADDR", ":8080"),
		DatabaseURL:       env("PARLEY_DATABASE_URL", DefaultDatabaseURL),
		Instance:          env("PARLEY_INSTANCE", ""),
		ChunkCommit:       strings.ToLower(env("PARLEY_CHUNK_COMMIT", "async")),
		ChunkWindow:       dur("PARLEY_CHUNK_WINDOW", chat.DefaultChunkWindow),
		LogReadEvery:      dur("PARLEY_LOG_READ_INTERVAL", postgres.DefaultReadInterval),
		JWTSecret:         getenv("PARLEY_JWT_SECRET"),
		JWKSURL:           env("PARLEY_JWKS_URL", ""),
		JWTIssuer:         env("PARLEY_JWT_ISSUER", ""),
		JWTAudience:       env("PARLEY_JWT_AUDIENCE", ""),
		UserIDClaim:       env("PARLEY_JWT_USER_ID_CLAIM", ""),
		RoleClaim:         env("PARLEY_JWT_ROLE_CLAIM", "roles"),
		AuditorRole:       env("PARLEY_AUDITOR_ROLE", domain.AuditorRole),
		MaxConnsPerUser:   int(number("PARLEY_MAX_CONNS_PER_USER", 16)),
		MessagesPerMinute: number("PARLEY_MESSAGES_PER_MINUTE", 30),
		APIPerMinute:      number("PARLEY_API_REQUESTS_PER_MINUTE", httpapi.DefaultRequestsPerMinute),
		ConnectsPerMinute: number("PARLEY_CONNECTS_PER_MINUTE", 30),
		AddrConnects:      number("PARLEY_ADDR_CONNECTS_PER_MINUTE", 300),
		LimitLeaseTTL:     dur("PARLEY_LIMIT_LEASE_TTL", redis.DefaultLeaseTTL),
		LLMProvider:       strings.ToLower(env("PARLEY_LLM_PROVIDER", "")),
		LLMURL:            env("PARLEY_LLM_URL", ""),
		LLMModel:          env("PARLEY_LLM_MODEL", ""),
		LLMAPIKey:         getenv("PARLEY_LLM_API_KEY"),
		TokenDelay:        dur("PARLEY_OFFLINE_TOKEN_DELAY", 30*time.Millisecond),
		AnswerTimeout:     dur("PARLEY_ANSWER_TIMEOUT", 2*time.Minute),
		ShutdownGrace:     dur("PARLEY_SHUTDOWN_GRACE", 5*time.Second),
		ShutdownTimeout:   dur("PARLEY_SHUTDOWN_TIMEOUT", 20*time.Second),
		RecoverIdle:       dur("PARLEY_RECOVER_IDLE", 5*time.Minute),
		JWTLeeway:         dur("PARLEY_JWT_LEEWAY", jwtauth.DefaultLeeway),
		SweepInterval:     dur("PARLEY_SWEEP_INTERVAL", 30*time.Second),
		HistoryMessages:   int(number("PARLEY_HISTORY_MESSAGES", 100)),
		HistoryBytes:      int(number("PARLEY_HISTORY_BYTES", 256<<10)),
		Projections:       boolean("PARLEY_PROJECTIONS", true),
		ChatLogInterval:   dur("PARLEY_CHATLOG_INTERVAL", 100*time.Millisecond),
		LogLevel:          strings.ToLower(env("PARLEY_LOG_LEVEL", "info")),
		RedisURL:          env("PARLEY_REDIS_URL", "redis://127.0.0.1:6379/0"),
		RedisPrefix:       env("PARLEY_REDIS_PREFIX", "parley:"),
		MemoryTokenLimit:  int(number("PARLEY_MEMORY_TOKEN_LIMIT", 200)),
		RAGTimeout:        dur("PARLEY_RAG_TIMEOUT", 2*time.Second),
		Web:               boolean("PARLEY_WEB", true),
		RAGRewrite:        boolean("PARLEY_RAG_REWRITE", true),
		RAGRewriteTime:    dur("PARLEY_RAG_REWRITE_TIMEOUT", rag.DefaultRewriteTimeout),
		RetentionEvery:    dur("PARLEY_RETENTION_INTERVAL", time.Hour),
	}
	between := func(name string, def, lo, hi float64) float64 {
		v := env(name, "")
		if v == "" {
			return def
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < lo || f > hi {
			problems = append(problems, fmt.Errorf("%s=%q must be a number from %v to %v", name, v, lo, hi))
			return def
		}
		return f
	}
	cfg.RAGMinRelevance = between("PARLEY_RAG_MIN_RELEVANCE", rag.DefaultMinRelevance, 0, 1)
	cfg.RAGMinSimilarity = between("PARLEY_RAG_MIN_SIMILARITY", 0, -1, 1)
	if sc, err := storeenv.FromEnv(getenv); err != nil {
		problems = append(problems, err)
	} else {
		cfg.EventStore, cfg.KurrentDBURL, cfg.Store = sc.Kind, sc.KurrentDBURL, sc
	}
	if dk, err := DataKeysFromEnv(getenv); err != nil {
		problems = append(problems, err)
	} else {
		cfg.DataKeys = dk
	}
	if r, err := ParseRetention(env("PARLEY_RETENTION", "")); err != nil {
		problems = append(problems, err)
	} else {
		cfg.Retention = r
	}
	if rc, err := ragenv.FromEnv(getenv); err != nil {
		problems = append(problems, fmt.Errorf("retrieval settings: %w", err))
	} else {
		cfg.RAG = rc
	}
	if u, err := url.Parse(cfg.RedisURL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
		problems = append(problems, errors.New("PARLEY_REDIS_URL must be a redis:// or rediss:// URL"))
	}
	if list, err := origins.Parse(strings.Split(env("PARLEY_ALLOWED_ORIGINS", ""), ",")); err != nil {
		problems = append(problems, fmt.Errorf("PARLEY_ALLOWED_ORIGINS: %w", err))
	} else {
		cfg.AllowedOrigins = list
	}
	return cfg, problems
}

// Check finds what is wrong with the configuration once flags have been
// applied, and fills the defaults that depend on other settings: the
// development secret when no key is set (DevSecret), the instance name
// from the host name and port.
func (cfg *Config) Check() []error {
	var problems []error
	if _, _, err := net.SplitHostPort(cfg.HTTPAddr); err != nil {
		problems = append(problems, fmt.Errorf("listen address %q is not host:port (PARLEY_HTTP_ADDR, e.g. :8080)", cfg.HTTPAddr))
	}
	if u, err := url.Parse(cfg.DatabaseURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		problems = append(problems, errors.New("PARLEY_DATABASE_URL must be a postgres:// URL"))
	}
	if cfg.ChunkCommit != "async" && cfg.ChunkCommit != "sync" {
		problems = append(problems, fmt.Errorf("PARLEY_CHUNK_COMMIT=%q: want async or sync", cfg.ChunkCommit))
	}
	if cfg.ChunkWindow > 15*time.Millisecond {
		problems = append(problems, fmt.Errorf("PARLEY_CHUNK_WINDOW=%s: at most 15ms (every delta may wait that long)", cfg.ChunkWindow))
	}
	if cfg.LogReadEvery < time.Millisecond || cfg.LogReadEvery > 100*time.Millisecond {
		problems = append(problems, fmt.Errorf("PARLEY_LOG_READ_INTERVAL=%s: between 1ms and 100ms (what the log brings — other replicas' answers, answers' starts and ends — may reach clients that much later)", cfg.LogReadEvery))
	}
	if cfg.ChunkWindow == 0 {
		cfg.ChunkWindow = -1 // chat.Config: never hold a delta
	}
	if cfg.JWTSecret == "" && cfg.JWKSURL == "" {
		cfg.JWTSecret, cfg.DevSecret = jwtauth.DevJWTSecret, true
	}
	if cfg.JWTSecret != "" && len(cfg.JWTSecret) < jwtauth.MinSecretLength {
		problems = append(problems, fmt.Errorf("PARLEY_JWT_SECRET is %d bytes; it must be at least %d", len(cfg.JWTSecret), jwtauth.MinSecretLength))
	}
	switch cfg.LLMProvider {
	case "", "offline":
		cfg.LLMProvider = ""
	case langchain.ProviderOllama, langchain.ProviderOpenAI:
		if err := cfg.LLM().Validate(); err != nil {
			problems = append(problems, fmt.Errorf("LLM settings (PARLEY_LLM_*): %w", err))
		}
	default:
		problems = append(problems, fmt.Errorf("PARLEY_LLM_PROVIDER=%q: want ollama, openai, or empty for the offline generator", cfg.LLMProvider))
	}
	if _, ok := logLevels[cfg.LogLevel]; !ok {
		problems = append(problems, fmt.Errorf("PARLEY_LOG_LEVEL=%q: want debug, info, warn or error", cfg.LogLevel))
	}
	if cfg.LimitLeaseTTL < time.Second {
		problems = append(problems, fmt.Errorf("PARLEY_LIMIT_LEASE_TTL=%v must be at least 1s (the leases are renewed every third of it)", cfg.LimitLeaseTTL))
	}
	if cfg.RetentionEvery < time.Second {
		problems = append(problems, fmt.Errorf("PARLEY_RETENTION_INTERVAL=%v must be at least 1s (each run takes a lock and queries the ChatLog)", cfg.RetentionEvery))
	}
	if cfg.ShutdownTimeout <= cfg.ShutdownGrace {
		problems = append(problems, fmt.Errorf("PARLEY_SHUTDOWN_TIMEOUT (%v) must be longer than PARLEY_SHUTDOWN_GRACE (%v)", cfg.ShutdownTimeout, cfg.ShutdownGrace))
	}
	if cfg.Instance == "" {
		host, _ := os.Hostname()
		_, port, _ := net.SplitHostPort(cfg.HTTPAddr)
		cfg.Instance = host + ":" + port
	}
	return problems
}

// Invalid reports problems (FromEnv's and Check's) as one error, a
// problem a line; nil when there are none.
func Invalid(problems []error) error {
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("invalid configuration:\n  %w", joinLines(problems))
}

// Load reads the configuration from the environment alone (no flags) and
// checks it: what code that runs chatd's stack without its command line
// (the benchmarks, tests) starts from.
func Load(getenv func(string) string) (Config, error) {
	cfg, problems := FromEnv(getenv)
	problems = append(problems, cfg.Check()...)
	return cfg, Invalid(problems)
}

// Logger returns chatd's logger: JSON lines on w at the configured level.
func (c Config) Logger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: c.SlogLevel()}))
}

// LLM is the generator's configuration.
func (c Config) LLM() langchain.Config {
	return langchain.Config{Provider: c.LLMProvider, BaseURL: c.LLMURL, Model: c.LLMModel, APIKey: c.LLMAPIKey, Timeout: c.AnswerTimeout}
}

// LogValue keeps secrets out of logs.
func (c Config) LogValue() slog.Value {
	secret := "set"
	if c.DevSecret {
		secret = "development default"
	} else if c.JWTSecret == "" {
		secret = "unset"
	}
	llm := "offline"
	if c.LLMProvider != "" {
		llm = c.LLMProvider + "/" + c.LLMModel
	}
	return slog.GroupValue(
		slog.String("addr", c.HTTPAddr),
		slog.String("database", RedactURL(c.DatabaseURL)),
		slog.String("instance", c.Instance),
		slog.String("event_store", c.EventStore),
		slog.String("chunk_commit", c.ChunkCommit),
		slog.String("chunk_window", max(c.ChunkWindow, 0).String()),
		slog.String("log_read_interval", c.LogReadEvery.String()),
		slog.String("jwt_secret", secret),
		slog.String("data_key", c.DataKeys.String()),
		slog.String("retention", retentionString(c.Retention)),
		slog.String("retention_interval", c.RetentionEvery.String()),
		slog.String("jwks_url", c.JWKSURL),
		slog.String("jwt_user_id_claim", c.UserIDClaim),
		slog.String("llm", llm),
		slog.Bool("projections", c.Projections),
		slog.Bool("web", c.Web),
		slog.String("chatlog_interval", c.ChatLogInterval.String()),
		slog.String("redis", RedactURL(c.RedisURL)),
		slog.String("rag_index", c.RAG.IndexKind()),
		slog.String("rag_embedder", c.RAG.Embedder),
		slog.Bool("rag_rewrite", c.RAGRewrite && c.LLMProvider != ""),
		slog.String("allowed_origins", c.AllowedOrigins.String()),
	)
}

var logLevels = map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}

// SlogLevel is LogLevel's slog.Level.
func (c Config) SlogLevel() slog.Level { return logLevels[c.LogLevel] }

// RedactURL drops a URL's password.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable)"
	}
	return u.Redacted()
}

// joinLines joins errors one per line, indented under the heading.
func joinLines(errs []error) error {
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return errors.New(strings.Join(msgs, "\n  "))
}
