package wsapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
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

// Rooms is what the gateway asks of the chat service.
type Rooms interface {
	Room(ctx context.Context, id int64, user string) (chat.RoomInfo, error)
	Post(ctx context.Context, id int64, user, text, clientID string) (chat.PostResult, error)
	Cancel(ctx context.Context, id int64, user string) error
}

// HistoryLoader returns a room's conversation and the version it reflects.
type HistoryLoader interface {
	History(ctx context.Context, roomID int64) (*room.History, error)
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
	after := int64(-2) // no resume
	if a := r.URL.Query().Get("after"); a != "" {
		if after, err = strconv.ParseInt(a, 10, 64); err != nil || after < -1 {
			http.Error(w, "after must be a stream version (an integer >= -1)", http.StatusBadRequest)
			return
		}
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
	if after >= -1 {
		c.lastQueued = after // the client has these; the hub may still deliver them
	}
	g.d.Metrics.ConnOpened(kind)
	defer func() { g.d.Metrics.ConnClosed(kind, c.code()) }()
	if refusal != "" {
		c.closeWith(CloseRateLimited, refusal)
		return
	}
	if authErr != nil {
		c.closeWith(CloseUnauthorized, domain.ErrorMessage(authErr))
		return
	}
	if kind == kindAudit && !principal.HasRole(g.cfg.AuditorRole) {
		c.closeWith(CloseForbidden, "auditing needs the "+truncate(g.cfg.AuditorRole, 60)+" role")
		return
	}
	if refusal := g.userRefusal(principal.UserID); refusal != "" {
		c.closeWith(CloseRateLimited, refusal)
		return
	}
	log := g.log.With("room_id", roomID, "user_id", principal.UserID)
	ctx, cancel = context.WithTimeout(g.ctx, g.cfg.CallTimeout)
	err = g.openRoom(ctx, kind, roomID, principal.UserID)
	cancel()
	if err != nil {
		if code := domain.ErrorCode(err); code != domain.ENOTFOUND && code != domain.EFORBIDDEN {
			log.Error("connect: load room", "error", err)
			c.closeWith(websocket.CloseInternalServerErr, "internal error")
			return
		}
		c.closeWith(CloseForbidden, "no such room, or it is not yours")
		return
	}
	release, ok := g.admit(c, principal.UserID)
	if !ok {
		c.closeWith(CloseRateLimited, "too many connections")
		return
	}
	defer release()

	g.d.Hub.register(roomID, c)
	defer g.d.Hub.unregister(roomID, c)
	writerDone := make(chan struct{})
	go func() { defer close(writerDone); c.writeLoop() }()
	defer func() { <-writerDone }()
	defer c.requestClose(websocket.CloseNormalClosure, "")

	if !principal.ExpiresAt.IsZero() {
		t := time.AfterFunc(principal.ExpiresAt.Sub(g.d.Now()), func() { c.requestClose(CloseUnauthorized, "token expired") })
		defer t.Stop()
	}
	if err := g.catchUp(c, roomID, after); err != nil {
		log.Error("connect: catch up", "error", err)
		c.requestClose(websocket.CloseInternalServerErr, "internal error")
		return
	}
	c.goLive()
	g.readLoop(c, roomID, principal, log)
}

// catchUp queues the history (or, resuming, the events after `after`).
func (g *Gateway) catchUp(c *conn, roomID int64, after int64) error {
	ctx, cancel := context.WithTimeout(g.ctx, g.cfg.CallTimeout)
	defer cancel()
	if after < -1 {
		h, err := g.d.History.History(ctx, roomID)
		if err != nil {
			return err
		}
		f, err := encodeHistory(h)
		if err != nil {
			return err
		}
		c.catchUp(f)
		return nil
	}
	for from := after + 1; ; {
		evs, err := g.d.Stream.ReadStream(ctx, room.Stream(roomID), domain.ReadStreamOptions{From: from, Limit: 500})
		if err != nil {
			return err
		}
		for _, ev := range evs {
			f, ok, err := eventFrame(ev)
			if err != nil {
				return err
			}
			if !ok {
				f = frame{version: ev.Version}
			}
			if !c.catchUp(f) {
				return nil
			}
		}
		if len(evs) < 500 {
			return nil
		}
		from = evs[len(evs)-1].Version + 1
	}
}

func (g *Gateway) readLoop(c *conn, roomID int64, p domain.Principal, log *slog.Logger) {
	ws := c.ws
	ws.SetReadLimit(g.cfg.MaxFrameBytes)
	extend := func() { _ = ws.SetReadDeadline(time.Now().Add(g.cfg.Timing.PongWait)) }
	extend()
	ws.SetPongHandler(func(string) error { extend(); return nil })
	violations, limited := 0, 0
	// violate answers a protocol error with an error frame; the last one
	// allowed closes with 1008 instead, its reason naming the error.
	clientID := "" // of the frame being handled, echoed in its error frames
	violate := func(code, msg string) bool {
		if violations++; violations >= g.cfg.MaxViolations {
			c.closeWith(websocket.ClosePolicyViolation, "too many protocol errors; last: "+truncate(msg, 80))
			return false
		}
		c.reply(encodeError(code, msg, clientID))
		return true
	}
	for {
		mt, data, err := ws.ReadMessage()
		if err != nil {
			if errors.Is(err, websocket.ErrReadLimit) {
				c.closeWith(websocket.CloseMessageTooBig, "frame too large")
			} else if ce := (*websocket.CloseError)(nil); errors.As(err, &ce) {
				c.closeWith(ce.Code, "")
			} else {
				c.closeWith(websocket.CloseAbnormalClosure, "")
			}
			return
		}
		extend()
		if mt != websocket.TextMessage {
			g.d.Metrics.FrameIn("binary")
			if !violate(domain.EINVALID, "frames must be JSON text") {
				return
			}
			continue
		}
		if !utf8.Valid(data) {
			g.d.Metrics.FrameIn("invalid")
			c.closeWith(websocket.CloseInvalidFramePayloadData, "invalid UTF-8")
			return
		}
		var cf clientFrame
		clientID = ""
		if err := json.Unmarshal(data, &cf); err != nil {
			g.d.Metrics.FrameIn("invalid")
			if !violate(domain.EINVALID, "frame is not a JSON object") {
				return
			}
			continue
		}
		clientID = cf.ClientID
		if c.kind == kindAudit && cf.Type != "ping" {
			g.d.Metrics.FrameIn(refusedLabel(cf.Type))
			if !violate(domain.EFORBIDDEN, errReadOnly) {
				return
			}
			continue
		}
		switch cf.Type {
		case "", "message":
			g.d.Metrics.FrameIn("message")
			if cf.Message == nil {
				if !violate(domain.EINVALID, `a message frame needs "message"`) {
					return
				}
				continue
			}
			if ok, _ := g.limits.Take(g.ctx, userlimit.Messages, p.UserID); !ok {
				c.reply(encodeError(domain.ERATELIMITED, "too many messages; slow down", clientID))
				if limited++; limited >= g.cfg.MaxViolations {
					c.closeWith(CloseRateLimited, "rate limited")
					return
				}
				continue
			}
			ctx, cancel := context.WithTimeout(g.ctx, g.cfg.CallTimeout)
			_, err := g.d.Rooms.Post(ctx, roomID, p.UserID, *cf.Message, cf.ClientID)
			cancel()
			if !g.replyError(c, err, clientID, log, violate) {
				return
			}
		case "cancel":
			g.d.Metrics.FrameIn("cancel")
			ctx, cancel := context.WithTimeout(g.ctx, g.cfg.CallTimeout)
			err := g.d.Rooms.Cancel(ctx, roomID, p.UserID)
			cancel()
			if !g.replyError(c, err, "", log, violate) {
				return
			}
		case "ping":
			g.d.Metrics.FrameIn("ping")
			c.reply(pongFrame)
		default:
			g.d.Metrics.FrameIn("unknown")
			if !violate(domain.EINVALID, "unknown frame type "+strconv.Quote(cf.Type)) {
				return
			}
		}
	}
}

// replyError turns a command's error into an error frame or a close; it
// reports false when the connection was closed.
func (g *Gateway) replyError(c *conn, err error, clientID string, log *slog.Logger, violate func(code, msg string) bool) bool {
	switch code := domain.ErrorCode(err); code {
	case "":
		return true
	case domain.ENOTFOUND, domain.EFORBIDDEN:
		c.closeWith(CloseForbidden, "no such room, or it is not yours")
		return false
	case domain.EBUSY:
		c.reply(encodeError(code, domain.ErrorMessage(err), clientID))
		return true
	case domain.EINVALID, domain.ETOOLARGE:
		return violate(code, domain.ErrorMessage(err))
	default:
		log.Error("command failed", "error", err)
		c.reply(encodeError(domain.EINTERNAL, "internal error", clientID))
		return true
	}
}

// authenticate finds the caller's credentials: a ticket, a Bearer header,
// a bearer.<token> subprotocol, or ?token= (the forerunner's way). A
// socket of kind audit refuses tickets before redeeming them: a ticket is
// single-use, so redeeming it would spend the owner's chat ticket (and a
// store round trip) only to refuse the socket anyway.
func (g *Gateway) authenticate(ctx context.Context, r *http.Request, kind string, roomID int64) (domain.Principal, error) {
	q := r.URL.Query()
	if t := q.Get("ticket"); t != "" {
		if kind == kindAudit {
			return domain.Principal{}, errAuditTicket
		}
		if g.d.Tickets == nil {
			return domain.Principal{}, domain.Errorf(domain.EUNAUTHORIZED, "tickets are not enabled")
		}
		return g.d.Tickets.Redeem(ctx, t, roomID)
	}
	token := ""
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, rest, _ := strings.Cut(h, " ")
		if strings.EqualFold(scheme, "Bearer") {
			token = strings.TrimSpace(rest)
		}
	}
	if token == "" {
		for _, p := range websocket.Subprotocols(r) {
			if enc, ok := strings.CutPrefix(p, "bearer."); ok {
				b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(enc, "="))
				if err != nil {
					return domain.Principal{}, domain.Errorf(domain.EUNAUTHORIZED, "bearer subprotocol is not base64url")
				}
				token = string(b)
				break
			}
		}
	}
	if token == "" {
		token = q.Get("token")
	}
	if token == "" {
		return domain.Principal{}, domain.Errorf(domain.EUNAUTHORIZED, "missing token")
	}
	return g.d.Auth.Verify(ctx, token)
}

// Shutdown stops accepting sockets, closes the open ones with 1001 once
// the frames already queued for them are written, and waits for their
// goroutines, or for ctx.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.mu.Lock()
	g.closing = true
	for c := range g.conns {
		c.drainAndClose(websocket.CloseGoingAway, "server shutting down; reconnect with ?after=<last version seen>")
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
