package httpapi

import (
	"context"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/parleychat/parley/adapters/origins"
	"github.com/parleychat/parley/adapters/userlimit"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/chat"
	"github.com/parleychat/parley/domain/room"
)

// Defaults of Config's zero values.
const (
	// DefaultReadinessTimeout bounds the checks of one /readyz request.
	DefaultReadinessTimeout = 2 * time.Second
	// DefaultMaxBodyBytes is the request body limit the API documents
	// (64 KiB); a larger body is answered 413.
	DefaultMaxBodyBytes = 64 << 10
	// DefaultMaxRooms is how many rooms GET /api/rooms lists at most.
	DefaultMaxRooms = 1000
	// DefaultRequestsPerMinute is a user's budget of /api requests.
	DefaultRequestsPerMinute = 120
)

// Config configures a Server. Every zero value means its documented
// default.
type Config struct {
	// ReadinessTimeout bounds all readiness checks of one /readyz request;
	// a check still running then counts as failed. Default 2s.
	ReadinessTimeout time.Duration
	// MaxBodyBytes caps request bodies; a larger one is answered 413
	// too_large. Default 64 KiB.
	MaxBodyBytes int64
	// MaxRooms is how many rooms, newest first, GET /api/rooms lists at
	// most. Default 1000.
	MaxRooms int
	// RequestsPerMinute and RequestBurst limit each user's /api requests
	// (a token bucket): RequestBurst at once, RequestsPerMinute a minute
	// after that. Over it a request is answered 429 rate_limited with
	// Retry-After. Defaults 120, and a quarter of RequestsPerMinute. With
	// Deps.Limits, the rate is the one it keeps.
	RequestsPerMinute float64
	RequestBurst      int
	// AuditorRole is the token role that may read any room's REST history
	// (GET /api/rooms/{id} and /messages) when Deps.Audit is set; each
	// such read is recorded in the room's stream. Default "auditor".
	AuditorRole string
	// AllowedOrigins are the other sites whose pages may call /api (CORS);
	// the WebSocket gateway checks Origin against the same list. A page
	// this server served itself always may. Zero: no other site.
	AllowedOrigins origins.List
}

func (c *Config) setDefaults() {
	if c.ReadinessTimeout <= 0 {
		c.ReadinessTimeout = DefaultReadinessTimeout
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxRooms <= 0 {
		c.MaxRooms = DefaultMaxRooms
	}
	if c.AuditorRole == "" {
		c.AuditorRole = domain.AuditorRole
	}
	if c.RequestsPerMinute <= 0 {
		c.RequestsPerMinute = DefaultRequestsPerMinute
	}
	if c.RequestBurst <= 0 {
		c.RequestBurst = userlimit.QuarterBurst(c.RequestsPerMinute)
	}
}

// Verifier checks a bearer token (without its "Bearer " prefix) and returns
// the principal it authenticates. A bad token is an error with code
// domain.EUNAUTHORIZED; jwtauth.Verifier implements it.
type Verifier interface {
	Verify(ctx context.Context, token string) (domain.Principal, error)
}

// Rooms creates, reads and deletes rooms as the event log tells them;
// chat.Service implements it. Room and Delete fail with code
// domain.ENOTFOUND for a missing or deleted room and domain.EFORBIDDEN for
// one user does not own.
type Rooms interface {
	CreateRoom(ctx context.Context, owner, title string) (chat.RoomInfo, error)
	Room(ctx context.Context, id int64, user string) (chat.RoomInfo, error)
	Delete(ctx context.Context, id int64, user string) error
}

// RoomSummary is a room as GET /api/rooms lists it.
type RoomSummary struct {
	ID      int64
	OwnerID string
	Title   string
	// CreatedAt is when the room's RoomCreated event was recorded.
	CreatedAt time.Time
	// Version is the room stream's version as far as the lister has seen it.
	Version int64
}

// RoomLister lists a user's rooms, newest first, at most limit of them,
// deleted rooms left out. A read model (ChatLog) implements it, so a room
// just created may be missing for a moment.
type RoomLister interface {
	RoomsOf(ctx context.Context, owner string, limit int) ([]RoomSummary, error)
}

// MessagePager pages through a room's messages. Messages returns at most
// limit messages of room roomID whose Version is less than before, the
// newest (highest Version) first. The handler always passes a positive
// before, math.MaxInt64 for the newest page, and asks for one message more
// than it answers with (at most 201) to learn whether older ones exist.
//
// Paging by Version is paging in the order messages were created: a room
// streams one answer at a time and refuses messages meanwhile, so every
// message's last event comes after the last event of every message created
// before it. Only the newest message can still change (a streaming answer),
// so pages of older messages are stable.
type MessagePager interface {
	Messages(ctx context.Context, roomID, before int64, limit int) ([]room.Message, error)
}

// TicketIssuer issues a single-use WebSocket ticket for p and roomID and
// returns it with its expiry; postgres.Tickets implements it. The caller
// has checked that p owns the room.
type TicketIssuer interface {
	Issue(ctx context.Context, p domain.Principal, roomID int64) (ticket string, expiresAt time.Time, err error)
}

// Checker is one readiness check: nil when its dependency can serve. Its
// error's text is shown, unauthenticated, by /readyz: keep it short and
// free of secrets. Check must return once ctx is done.
type Checker interface {
	Check(ctx context.Context) error
}

// CheckerFunc adapts a function to Checker.
type CheckerFunc func(ctx context.Context) error

// Check calls f.
func (f CheckerFunc) Check(ctx context.Context) error { return f(ctx) }

// Metrics records HTTP requests and serves /metrics; prom.Metrics
// implements it.
type Metrics interface {
	ObserveHTTP(route string, status int, d time.Duration)
	Handler() http.Handler
}

// Deps are the Server's collaborators. Verifier, Rooms, RoomLister,
// Messages and Tickets are required. The others may be nil: Logger discards,
// no Checks means /readyz is always ready, and a nil Metrics, Docs, ChatWS,
// AuditWS, DevTokens or Web makes its routes answer 404.
type Deps struct {
	// Logger receives one access-log line per request.
	Logger *slog.Logger
	// Verifier authenticates the bearer tokens of /api requests.
	Verifier Verifier
	// Rooms creates, reads and deletes rooms (chat.Service).
	Rooms Rooms
	// RoomLister lists a user's rooms (the ChatLog read model).
	RoomLister RoomLister
	// Messages pages through a room's messages (the ChatLog read model).
	Messages MessagePager
	// Tickets issues WebSocket tickets (postgres.Tickets).
	Tickets TicketIssuer
	// Checks are the readiness checks by name ("event_store"): one that
	// fails makes /readyz answer 503.
	Checks map[string]Checker
	// DegradedChecks are the checks of what the server can serve without,
	// worse ("redis", "projections"): one that fails makes /readyz answer
	// 200 with status "degraded".
	DegradedChecks map[string]Checker
	// Metrics records requests and serves /metrics (prom.Metrics).
	Metrics Metrics
	// Docs holds openapi.yaml and asyncapi.yaml at its root (docs.FS).
	Docs fs.FS
	// ChatWS serves GET /ws/chat/{room_id}/ and AuditWS serves
	// GET /ws/audit/{room_id}/ (the WebSocket gateway). They read the id
	// with r.PathValue("room_id") and authenticate by themselves.
	ChatWS  http.Handler
	AuditWS http.Handler
	// Audit lets callers with Config.AuditorRole read rooms they do not
	// own, recording each read (chat.Service). Nil: only owners read.
	Audit RoomAuditor
	// Erasure serves POST /api/me/erase (chat.Service); nil answers 404.
	Erasure UserEraser
	// Limits keeps the request rate (userlimit.Limiter, shared across
	// replicas through Redis, kind userlimit.Requests). Nil keeps Config's
	// rate in this process.
	Limits RateLimiter
	// Now is the clock of the request limits. Default time.Now.
	Now func() time.Time
	// DevTokens, set only on a server running on the public development
	// secret, serves POST /api/dev/token (the chat page's development
	// login). Nil: that endpoint does not exist.
	DevTokens DevTokenIssuer
	// Web serves the chat page: GET / and the assets under GET /web/
	// (webui.Handler). Nil: both are 404.
	Web http.Handler
}

// RateLimiter spends one token of kind for key, or says how long until
// there is one; userlimit.Limiter implements it.
type RateLimiter interface {
	Take(ctx context.Context, kind userlimit.Kind, key string) (bool, time.Duration)
}

// Server is Parley's HTTP handler. Create it with NewServer and serve
// Handler with an http.Server; it starts no goroutines of its own.
type Server struct {
	cfg     Config
	log     *slog.Logger
	deps    Deps
	mux     *http.ServeMux
	handler http.Handler
	limits  RateLimiter
}

// NewServer returns a Server. It panics when a required dependency is nil:
// that is a wiring bug, found by the first test that builds the server.
func NewServer(cfg Config, deps Deps) *Server {
	cfg.setDefaults()
	for _, d := range []struct {
		name    string
		missing bool
	}{
		{"Verifier", deps.Verifier == nil}, {"Rooms", deps.Rooms == nil}, {"RoomLister", deps.RoomLister == nil},
		{"Messages", deps.Messages == nil}, {"Tickets", deps.Tickets == nil},
	} {
		if d.missing {
			panic("httpapi: NewServer: Deps." + d.name + " is nil")
		}
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: deps.Logger, deps: deps, mux: http.NewServeMux(), limits: deps.Limits}
	if s.limits == nil {
		s.limits = userlimit.NewLimiter(userlimit.LimiterConfig{
			Rates: map[userlimit.Kind]userlimit.Rate{userlimit.Requests: {PerMinute: cfg.RequestsPerMinute, Burst: cfg.RequestBurst}},
		}, userlimit.LimiterDeps{Now: deps.Now})
	}
	s.routes()
	s.handler = s.observe(http.HandlerFunc(s.dispatch))
	return s
}

// Handler returns the handler of every route, wrapped in the middleware
// every request goes through: request id, panic recovery, access log and
// metrics.
func (s *Server) Handler() http.Handler { return s.handler }

// dispatch hands the request to its route, and answers a request no route
// matches with a JSON error.
func (s *Server) dispatch(w http.ResponseWriter, r *http.Request) {
	if _, pattern := s.mux.Handler(r); pattern == "" {
		unmatched(s.mux).ServeHTTP(w, r)
		return
	}
	s.mux.ServeHTTP(w, r)
}
