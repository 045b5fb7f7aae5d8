package wsapi

import (
	"context"
	"errors"
	"log/slog"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/parleychat/parley/adapters/userlimit"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
)

// errRateLimited refuses a message over the user's rate; PostAdmitted
// returns it from the gateway's admit.
var errRateLimited = domain.Errorf(domain.ERATELIMITED, "too many messages; slow down")

// reader is the state of one connection's reader: the protocol errors and
// rate-limited messages it has counted.
type reader struct {
	g          *Gateway
	c          *conn
	roomID     int64
	p          domain.Principal
	log        *slog.Logger
	violations int
	limited    int
}

// violate answers a protocol error with an error frame; the last one
// allowed closes with 1008, once the frames before it are written, instead.
// It reports false when it closed.
func (r *reader) violate(code, msg, clientID string) bool {
	if r.violations++; r.violations >= r.g.cfg.MaxViolations {
		r.c.closeAfterQueued(discViolations.with(truncate(msg, 80)))
		return false
	}
	r.c.reply(encodeError(code, msg, clientID))
	return true
}

func (g *Gateway) readLoop(c *conn, roomID int64, p domain.Principal, log *slog.Logger) {
	ws := c.ws
	ws.SetReadLimit(g.cfg.MaxFrameBytes)
	extend := func() { _ = ws.SetReadDeadline(time.Now().Add(g.cfg.Timing.PongWait)) }
	extend()
	ws.SetPongHandler(func(string) error { extend(); return nil })
	r := &reader{g: g, c: c, roomID: roomID, p: p, log: log}
	for {
		mt, data, err := ws.ReadMessage()
		if err != nil {
			if errors.Is(err, websocket.ErrReadLimit) {
				c.closeWith(discFrameTooLarge)
			} else if ce := (*websocket.CloseError)(nil); errors.As(err, &ce) {
				c.closeWith(echo(ce.Code))
			} else {
				c.closeWith(discGone)
			}
			return
		}
		extend()
		if mt != websocket.TextMessage {
			g.d.Metrics.FrameIn("binary")
			if !r.violate(domain.EINVALID, "frames must be JSON text", "") {
				return
			}
			continue
		}
		if !utf8.Valid(data) {
			g.d.Metrics.FrameIn("invalid")
			c.closeWith(discInvalidUTF8)
			return
		}
		if !r.handle(data) {
			return
		}
	}
}

// handle acts on one text frame; it reports false when the connection was
// closed.
func (r *reader) handle(data []byte) bool {
	g, c := r.g, r.c
	cf, err := parseClientFrame(data)
	if c.kind == kindAudit && (err != nil || cf.Type != "ping") {
		g.d.Metrics.FrameIn(refusedLabel(cf.Type))
		return r.violate(domain.EFORBIDDEN, errReadOnly, "")
	}
	if err != nil {
		g.d.Metrics.FrameIn("invalid")
		return r.violate(domain.EINVALID, err.Error(), cf.ClientID)
	}
	switch cf.Type {
	case "", "message":
		g.d.Metrics.FrameIn("message")
		admit := func() error {
			ctx, cancel := context.WithTimeout(g.ctx, g.cfg.CallTimeout)
			defer cancel()
			if ok, _ := g.limits.Take(ctx, userlimit.Messages, r.p.UserID); !ok {
				return errRateLimited
			}
			return nil
		}
		ctx, cancel := context.WithTimeout(g.ctx, g.cfg.CallTimeout)
		_, err := g.d.Rooms.PostAdmitted(ctx, r.roomID, r.p.UserID, *cf.Message, cf.ClientID, admit)
		cancel()
		return r.replyError(err, cf.ClientID)
	case "cancel":
		g.d.Metrics.FrameIn("cancel")
		ctx, cancel := context.WithTimeout(g.ctx, g.cfg.CallTimeout)
		err := g.d.Rooms.Cancel(ctx, r.roomID, r.p.UserID)
		cancel()
		if errors.Is(err, room.ErrNoAnswer) {
			return true // nothing streaming: ignored, so racing cancels from two tabs are harmless
		}
		return r.replyError(err, "")
	default: // "ping"
		g.d.Metrics.FrameIn("ping")
		c.reply(pongFrame)
		return true
	}
}

// replyError turns a command's error into an error frame or a close; it
// reports false when the connection was closed.
func (r *reader) replyError(err error, clientID string) bool {
	switch code := domain.ErrorCode(err); code {
	case "":
		return true
	case domain.ENOTFOUND, domain.EFORBIDDEN:
		r.c.closeWith(discNoRoom)
		return false
	case domain.ERATELIMITED:
		r.c.reply(encodeError(code, domain.ErrorMessage(err), clientID))
		if r.limited++; r.limited >= r.g.cfg.MaxViolations {
			r.c.closeAfterQueued(discRateLimited)
			return false
		}
		return true
	case domain.EBUSY:
		r.c.reply(encodeError(code, domain.ErrorMessage(err), clientID))
		return true
	case domain.EINVALID, domain.ETOOLARGE:
		return r.violate(code, domain.ErrorMessage(err), clientID)
	case domain.EUNAVAILABLE:
		r.log.Warn("command failed: the event store is unavailable", "error", err)
		r.c.reply(encodeError(code, "the event store is unavailable; nothing was stored: send again later (same client_id)", clientID))
		return true
	default:
		r.log.Error("command failed", "error", err)
		r.c.reply(encodeError(domain.EINTERNAL, "internal error", clientID))
		return true
	}
}
