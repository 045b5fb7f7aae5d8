package wsapi

import (
	"context"
	"net/http"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/chat"
	"github.com/parleychat/parley/domain/room"
)

// kindAudit is the connection kind (and metrics label) of audit sockets.
const kindAudit = "audit"

// errReadOnly is the message of the error frame an audit socket gets for
// anything but a ping.
const errReadOnly = "audit connections are read-only: only ping frames are accepted"

// errAuditTicket refuses tickets on the audit channel (docs/protocol.md
// §9): they are issued to room owners for the chat channel.
var errAuditTicket = domain.Errorf(domain.EUNAUTHORIZED, "tickets are not accepted on the audit channel; send the token")

// AuditRooms opens a room for an auditor and records the access in the
// room's stream (as room.AuditAccessed); chat.Service implements it. A
// missing or deleted room is an error with code domain.ENOTFOUND.
type AuditRooms interface {
	Audit(ctx context.Context, id int64, auditor, iface string) (chat.RoomInfo, error)
}

// Audit serves GET /ws/audit/{room_id}/: any room, read-only, for a token
// with the Config.AuditorRole role. It authenticates as Chat does (Bearer
// header, bearer.<token> subprotocol, ?token=) but refuses tickets (4401),
// which are issued to owners for the chat channel. It records the access
// as an AuditAccessed event of the room, then sends the same frames as
// Chat: the history (or, with ?after=, the events after it) and then the
// room live. Every client frame but ping is answered with an error frame
// of code "forbidden" (counting as a protocol error) and nothing is ever
// posted. A token without the role is closed with 4403, like a missing
// room. It panics when Deps.Audit is nil: that is a wiring bug.
func (g *Gateway) Audit() http.Handler {
	if g.d.Audit == nil {
		panic("wsapi: Gateway.Audit: Deps.Audit is nil")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { g.serve(w, r, kindAudit) })
}

// openRoom checks that user may open the room as kind: its owner for
// chat; for audit (the role is checked before) any existing room, the
// access being recorded.
func (g *Gateway) openRoom(ctx context.Context, kind string, roomID int64, user string) error {
	if kind == kindAudit {
		_, err := g.d.Audit.Audit(ctx, roomID, user, room.InterfaceWebSocket)
		return err
	}
	_, err := g.d.Rooms.Room(ctx, roomID, user)
	return err
}

// refusedLabel is the metrics label of a client frame an audit socket
// refuses: its type when the protocol has it, else "unknown".
func refusedLabel(typ string) string {
	switch typ {
	case "", "message":
		return "message"
	case "cancel":
		return "cancel"
	}
	return "unknown"
}
