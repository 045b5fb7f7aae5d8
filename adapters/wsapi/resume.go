package wsapi

import (
	"context"
	"errors"
	"log/slog"
	"net/url"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
)

// maxAfter is the largest version ?after= takes: 2^53-1, the largest
// integer a JavaScript number holds exactly, as for room ids.
const maxAfter = 1<<53 - 1

// resume is where a connection starts: with the history (after < 0), or
// after version after, whose event's chain hash the client holds (hash,
// "" when it has none).
type resume struct {
	after int64
	hash  string
}

// parseResume reads ?after= and ?hash=: after a non-negative decimal
// integer without sign or leading zeros, at most maxAfter; hash the 64
// lowercase hex digits frames carry, and only with after.
func parseResume(q url.Values) (resume, error) {
	r := resume{after: -1}
	if q.Has("after") {
		v, ok := parseVersion(q.Get("after"), maxAfter)
		if !ok {
			return resume{}, errors.New("after must be a stream version: a non-negative integer, in decimal, without sign or leading zeros")
		}
		r.after = v
	}
	if q.Has("hash") {
		r.hash = q.Get("hash")
		if !domain.IsChainHash(r.hash) {
			return resume{}, errors.New("hash must be the 64 lowercase hex digits of a frame's hash")
		}
		if r.after < 0 {
			return resume{}, errors.New("hash goes with after: the hash of the event at that version")
		}
	}
	return r, nil
}

// parseVersion parses a version in canonical decimal: digits only, no
// leading zero unless it is 0, at most max.
func parseVersion(s string, max int64) (int64, bool) {
	if s == "" || len(s) > 19 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	var v int64
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
		if v > max {
			return 0, false
		}
	}
	return v, true
}

// catchUp queues the history, or, resuming, the events after pos.after.
// A resume whose position the stream does not hold — after beyond the
// room's last event, or an event at after whose hash is not pos.hash (the
// log lost and rewrote its tail, say in a database crash) — gets the
// history instead: "your position is gone, here is the room", never
// silence or a conversation that silently differs from the log.
func (g *Gateway) catchUp(c *conn, roomID int64, pos resume, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(g.ctx, g.cfg.CallTimeout)
	defer cancel()
	if pos.after < 0 {
		return g.sendHistory(ctx, c, roomID)
	}
	first := true
	for ev, err := range domain.StreamEvents(ctx, g.d.Stream, room.Stream(roomID), domain.ReadStreamOptions{From: pos.after, Limit: 500}) {
		if first && errors.Is(err, domain.ErrStreamNotFound) {
			return room.ErrNotFound
		}
		if err != nil {
			return err
		}
		if first {
			first = false
			if ev.Version != pos.after || (pos.hash != "" && domain.ChainHash(ev.Metadata) != pos.hash) {
				return g.positionGone(ctx, c, roomID, pos, log)
			}
			c.resumeFrom(pos.after)
			continue
		}
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
	if first { // after is past the room's last event
		return g.positionGone(ctx, c, roomID, pos, log)
	}
	return nil
}

// positionGone answers a resume from a position the stream does not hold
// with the history.
func (g *Gateway) positionGone(ctx context.Context, c *conn, roomID int64, pos resume, log *slog.Logger) error {
	log.Debug("resume: the position is gone; sending the history", "after", pos.after)
	return g.sendHistory(ctx, c, roomID)
}

func (g *Gateway) sendHistory(ctx context.Context, c *conn, roomID int64) error {
	h, hash, err := g.d.History.History(ctx, roomID)
	if err != nil {
		return err
	}
	f, err := encodeHistory(h, hash, g.cfg.HistoryMessages, g.cfg.HistoryBytes)
	if err != nil {
		return err
	}
	c.catchUp(f)
	return nil
}
