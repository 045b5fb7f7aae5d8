package wsapi

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/parleychat/parley/adapters/origins"
	"github.com/parleychat/parley/adapters/userlimit"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/chat"
	"github.com/parleychat/parley/domain/room"
)

// Subprotocol is the protocol name the server selects when a client offers it.
const Subprotocol = "parley.v1"

// Timing holds the connection's clocks. Zero values take the defaults.
type Timing struct {
	PingPeriod time.Duration // how often the server pings; default 25s
	PongWait   time.Duration // how long a silent peer lives; default 60s (> PingPeriod)
	WriteWait  time.Duration // deadline of every write; default 10s
	Handshake  time.Duration // upgrade handshake timeout; default 10s
}

// DefaultMessageBurst is how many messages a user may send at once.
const DefaultMessageBurst = 5

// Defaults of Config's history cap.
const (
	DefaultHistoryMessages = 100
	DefaultHistoryBytes    = 256 << 10
)

// Config configures the Gateway. Zero values take the documented defaults.
type Config struct {
	// AllowedOrigins lists the browser origins that may connect from other
	// sites (origins.List.Check: a request without Origin, not a browser,
	// and a page this server served itself always may). Others get HTTP
	// 403. The REST API's CORS answers use the same list.
	AllowedOrigins origins.List
	// MaxFrameBytes is the largest client frame; bigger closes with 1009.
	// Default 64 KiB.
	MaxFrameBytes int64
	// SendQueue is the frames buffered per connection before the client is
	// closed as too slow (4000). Default 256.
	SendQueue int
	// MaxConnsPerUser caps a user's open sockets; more closes with 4429.
	// Default 16. This and the rates below are kept by Deps.Limits, across
	// replicas when it shares them; without it, in this process.
	MaxConnsPerUser int
	// MessagesPerMinute and MessageBurst rate-limit a user's messages
	// across their sockets. Defaults 30 and 5.
	MessagesPerMinute float64
	MessageBurst      int
	// ConnectsPerMinute and ConnectBurst rate-limit a user's connection
	// attempts, before the room is looked up (so room ids cannot be
	// probed fast); AddrConnectsPerMinute and AddrConnectBurst those from
	// one network address, before the token is checked. Over them the
	// socket closes with 4429, saying when to retry. Defaults 30 and 300
	// a minute, in bursts of up to a quarter of it.
	ConnectsPerMinute     float64
	ConnectBurst          int
	AddrConnectsPerMinute float64
	AddrConnectBurst      int
	// MaxViolations is how many protocol errors a socket may make before
	// it is closed with 1008. Default 5.
	MaxViolations int
	// CallTimeout bounds the store calls a frame triggers. Default 10s.
	CallTimeout time.Duration
	// HistoryMessages and HistoryBytes cap the history frame: the room's
	// newest messages, at most HistoryMessages of them and at most
	// HistoryBytes of their JSON (the newest is always sent, whatever its
	// size). Older ones are paged with GET /api/rooms/{id}/messages?before=
	// the frame's next_before. Defaults 100 and 256 KiB: a long room costs
	// each connect a bounded frame, not the whole conversation.
	HistoryMessages int
	HistoryBytes    int
	// TokenLeeway is the clock skew the token verifier tolerates past a
	// token's expiry (jwtauth.Config.Leeway). A socket is closed with 4401
	// at its token's ExpiresAt plus it: when a REST request with the same
	// token starts being refused, one leeway for both. Zero: at ExpiresAt.
	TokenLeeway time.Duration
	Timing      Timing
	// AuditorRole is the token role (jwtauth.Config.RoleClaim) that may
	// open any room read-only at /ws/audit/{room_id}/. Default "auditor".
	AuditorRole string
}

func (c *Config) setDefaults() {
	if c.MaxFrameBytes <= 0 {
		c.MaxFrameBytes = 64 << 10
	}
	if c.SendQueue <= 0 {
		c.SendQueue = 256
	}
	if c.MaxConnsPerUser <= 0 {
		c.MaxConnsPerUser = 16
	}
	if c.MessagesPerMinute <= 0 {
		c.MessagesPerMinute = 30
	}
	if c.MessageBurst <= 0 {
		c.MessageBurst = DefaultMessageBurst
	}
	if c.ConnectsPerMinute <= 0 {
		c.ConnectsPerMinute = 30
	}
	if c.ConnectBurst <= 0 {
		c.ConnectBurst = userlimit.QuarterBurst(c.ConnectsPerMinute)
	}
	if c.AddrConnectsPerMinute <= 0 {
		c.AddrConnectsPerMinute = 300
	}
	if c.AddrConnectBurst <= 0 {
		c.AddrConnectBurst = userlimit.QuarterBurst(c.AddrConnectsPerMinute)
	}
	if c.MaxViolations <= 0 {
		c.MaxViolations = 5
	}
	if c.CallTimeout <= 0 {
		c.CallTimeout = 10 * time.Second
	}
	if c.HistoryMessages <= 0 {
		c.HistoryMessages = DefaultHistoryMessages
	}
	if c.HistoryBytes <= 0 {
		c.HistoryBytes = DefaultHistoryBytes
	}
	if c.AuditorRole == "" {
		c.AuditorRole = domain.AuditorRole
	}
	t := &c.Timing
	if t.PingPeriod <= 0 {
		t.PingPeriod = 25 * time.Second
	}
	if t.PongWait <= t.PingPeriod {
		t.PongWait = t.PingPeriod * 12 / 5
	}
	if t.WriteWait <= 0 {
		t.WriteWait = 10 * time.Second
	}
	if t.Handshake <= 0 {
		t.Handshake = 10 * time.Second
	}
}

// Authenticator verifies access tokens.
type Authenticator interface {
	Verify(ctx context.Context, token string) (domain.Principal, error)
}

// TicketRedeemer redeems single-use connection tickets.
type TicketRedeemer interface {
	Redeem(ctx context.Context, ticket string, roomID int64) (domain.Principal, error)
}

// Rooms is what the gateway asks of the chat service. PostAdmitted calls
// admit, the gateway's rate limit, after its duplicate check (see
// chat.Service.PostAdmitted).
type Rooms interface {
	Room(ctx context.Context, id int64, user string) (chat.RoomInfo, error)
	PostAdmitted(ctx context.Context, id int64, user, text, clientID string, admit func() error) (chat.PostResult, error)
	Cancel(ctx context.Context, id int64, user string) error
}

// HistoryLoader returns a room's conversation, as of its last event, and
// that event's audit chain hash ("" when it has none).
type HistoryLoader interface {
	History(ctx context.Context, roomID int64) (*room.History, string, error)
}

// Metrics receives the gateway's measurements.
type Metrics interface {
	ConnOpened(kind string)
	ConnClosed(kind string, code int)
	FrameIn(typ string)
	FrameOut(typ string)
	SendQueueDrop()
}

// Deps are the gateway's collaborators; Metrics and Logger may be nil.
type Deps struct {
	Hub     *Hub
	Auth    Authenticator
	Tickets TicketRedeemer
	Rooms   Rooms
	History HistoryLoader
	Stream  domain.StreamReader
	Metrics Metrics
	Logger  *slog.Logger
	Now     func() time.Time
	// Audit opens rooms for auditors (chat.Service); Audit() needs it.
	Audit AuditRooms
	// Limits keeps the per-user limits (userlimit.Limiter, shared across
	// replicas through Redis). Nil keeps Config's limits in this process.
	Limits Limiter
}

// Gateway serves the chat WebSocket endpoint.
type Gateway struct {
	cfg      Config
	d        Deps
	log      *slog.Logger
	upgrader websocket.Upgrader
	ctx      context.Context // store calls run under it; cancelled on Shutdown
	cancel   context.CancelFunc

	mu      sync.Mutex
	closing bool
	conns   map[*conn]struct{}
	limits  Limiter
	wg      sync.WaitGroup
}

// New returns a Gateway.
func New(cfg Config, d Deps) *Gateway {
	cfg.setDefaults()
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Metrics == nil {
		d.Metrics = nopMetrics{}
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &Gateway{cfg: cfg, d: d, log: d.Logger.With("component", "wsapi"), ctx: ctx, cancel: cancel,
		conns: map[*conn]struct{}{}, limits: d.Limits}
	if g.limits == nil {
		g.limits = localLimits(cfg, d.Now)
	}
	g.upgrader = websocket.Upgrader{
		HandshakeTimeout:  cfg.Timing.Handshake,
		ReadBufferSize:    0, // reuse the HTTP server's 4 KiB reader: one buffer per idle socket, not two
		WriteBufferSize:   4096,
		WriteBufferPool:   &sync.Pool{},
		Subprotocols:      []string{Subprotocol},
		CheckOrigin:       func(*http.Request) bool { return true }, // checked before Upgrade
		EnableCompression: false,
	}
	return g
}

// Chat serves GET /ws/chat/{room_id}/.
func (g *Gateway) Chat() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { g.serve(w, r, "chat") })
}

func (g *Gateway) serve(w http.ResponseWriter, r *http.Request, kind string) {
	if !g.cfg.AllowedOrigins.Check(r.Header.Get("Origin"), r.Host) {
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	roomID, err := strconv.ParseInt(r.PathValue("room_id"), 10, 64)
	if err != nil || roomID <= 0 {
		http.Error(w, "room id must be a positive integer", http.StatusNotFound)
		return
	}
	pos, err := parseResume(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	g.mu.Lock()
	if g.closing {
		g.mu.Unlock()
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return
	}
	g.wg.Add(1)
	g.mu.Unlock()
	defer g.wg.Done()

	ctx, cancel := context.WithTimeout(g.ctx, g.cfg.CallTimeout)
	refusal := g.addrRefusal(ctx, r) // before any work for the token
	var principal domain.Principal
	var authErr error
	if refusal == "" {
		principal, authErr = g.authenticate(ctx, r, kind, roomID)
	}
	cancel()

	ws, err := g.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered with an HTTP error
	}
	c := newConn(ws, kind, g.cfg.SendQueue, g.cfg.Timing, g.d.Metrics)
	g.d.Metrics.ConnOpened(kind)
	defer func() { g.d.Metrics.ConnClosed(kind, c.code()) }()
	log := g.log.With("room_id", roomID, "user_id", principal.UserID)
	if refusal != "" {
		c.closeWith(discConnectRate.with(refusal))
		return
	}
	if authErr != nil {
		if domain.ErrorCode(authErr) != domain.EUNAUTHORIZED {
			c.closeWith(g.closeFor(authErr, log, "connect: redeem ticket"))
			return
		}
		c.closeWith(discUnauthorized.with(domain.ErrorMessage(authErr)))
		return
	}
	if kind == kindAudit && !principal.HasRole(g.cfg.AuditorRole) {
		c.closeWith(discNoRole.with(truncate(g.cfg.AuditorRole, 60)))
		return
	}
	if refusal := g.userRefusal(principal.UserID); refusal != "" {
		c.closeWith(discConnectRate.with(refusal))
		return
	}
	ctx, cancel = context.WithTimeout(g.ctx, g.cfg.CallTimeout)
	err = g.openRoom(ctx, kind, roomID, principal.UserID)
	cancel()
	if err != nil {
		c.closeWith(g.closeFor(err, log, "connect: load room"))
		return
	}
	release, ok := g.admit(c, principal.UserID)
	if !ok {
		c.closeWith(discTooManyConns)
		return
	}
	defer release()

	g.d.Hub.register(roomID, c)
	defer g.d.Hub.unregister(roomID, c)
	writerDone := make(chan struct{})
	go func() { defer close(writerDone); c.writeLoop() }()
	defer func() { <-writerDone }()
	defer c.requestClose(discNormal)

	if !principal.ExpiresAt.IsZero() {
		t := time.AfterFunc(principal.ExpiresAt.Add(g.cfg.TokenLeeway).Sub(g.d.Now()), func() { c.requestClose(discTokenExpired) })
		defer t.Stop()
	}
	if err := g.catchUp(c, roomID, pos, log); err != nil {
		c.requestClose(g.closeFor(err, log, "connect: catch up"))
		return
	}
	c.goLive()
	g.readLoop(c, roomID, principal, log)
}

// closeFor is the disconnect for a failure to open or catch up a room:
// 4403 for a missing or foreign room, 1013 while the event store is
// unavailable, else 1011, logged.
func (g *Gateway) closeFor(err error, log *slog.Logger, what string) disconnect {
	switch domain.ErrorCode(err) {
	case domain.ENOTFOUND, domain.EFORBIDDEN:
		return discNoRoom
	case domain.EUNAVAILABLE:
		log.Warn(what+": the event store is unavailable; the client is told to come back", "error", err)
		return discUnavailable
	}
	log.Error(what, "error", err)
	return discInternal
}

// Shutdown stops accepting sockets, closes the open ones with 1001 once
// the frames already queued for them are written, and waits for their
// goroutines, or for ctx.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.mu.Lock()
	g.closing = true
	for c := range g.conns {
		c.drainAndClose(discShutdown)
	}
	g.mu.Unlock()
	done := make(chan struct{})
	go func() { g.wg.Wait(); close(done) }()
	defer g.cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type nopMetrics struct{}

func (nopMetrics) ConnOpened(string)      {}
func (nopMetrics) ConnClosed(string, int) {}
func (nopMetrics) FrameIn(string)         {}
func (nopMetrics) FrameOut(string)        {}
func (nopMetrics) SendQueueDrop()         {}

// truncate cuts s to at most n bytes on a rune boundary (close reasons are
// limited to 123 bytes).
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
