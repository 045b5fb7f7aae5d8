package httpapi

import (
	"context"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/chat"
	"github.com/parleychat/parley/domain/room"
)

// RoomAuditor opens any room for an auditor and records the read in the
// room's stream as room.AuditAccessed through iface; chat.Service
// implements it. A missing or deleted room is an error with code
// domain.ENOTFOUND, and records nothing.
type RoomAuditor interface {
	Audit(ctx context.Context, id int64, auditor, iface string) (chat.RoomInfo, error)
}

// readRooms returns the Rooms the read routes (GET /api/rooms/{id} and
// /messages) check access with: the owner reads as always; a caller with
// the auditor role reads any other room as an audited read.
func (s *Server) readRooms() Rooms {
	if s.deps.Audit == nil {
		return s.deps.Rooms
	}
	return auditedRooms{Rooms: s.deps.Rooms, audit: s.deps.Audit, role: s.cfg.AuditorRole}
}

// auditedRooms is Rooms whose Room falls back to an audited read when the
// room exists but is not the caller's and the caller is an auditor. An
// owner's reads of their own rooms are not audit events, auditor or not.
type auditedRooms struct {
	Rooms
	audit RoomAuditor
	role  string
}

// Room implements Rooms. The caller's principal comes from ctx, where
// authenticate put it.
func (a auditedRooms) Room(ctx context.Context, id int64, user string) (chat.RoomInfo, error) {
	info, err := a.Rooms.Room(ctx, id, user)
	if domain.ErrorCode(err) != domain.EFORBIDDEN || !principalFrom(ctx).HasRole(a.role) {
		return info, err
	}
	return a.audit.Audit(ctx, id, user, room.InterfaceREST)
}
