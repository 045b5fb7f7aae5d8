package chat

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
)

// RecordAccess appends a.EventType() to room id's stream as event eventID,
// with the room.AuditExpectation (the stream must exist; its version does
// not matter, so the append never conflicts with the room's writers and
// never creates a stream). a.UserID and a.Interface must be set and a.At
// is the metadata's occurred_at too. A room that was never created is
// room.ErrNotFound.
func RecordAccess(ctx context.Context, store domain.Appender, id int64, eventID domain.UUID, a room.AuditAccessed) (domain.AppendResult, error) {
	switch {
	case strings.TrimSpace(a.UserID) == "":
		return domain.AppendResult{}, domain.Errorf(domain.EINVALID, "an audited read needs the reader's user id")
	case a.Interface != room.InterfaceWebSocket && a.Interface != room.InterfaceREST && a.Interface != room.InterfaceCLI:
		return domain.AppendResult{}, domain.Errorf(domain.EINVALID, "audit interface %q is not websocket, rest or cli", a.Interface)
	}
	a.At = a.At.UTC()
	ev, err := room.EncodeEvent(eventID, a, domain.Metadata{UserID: a.UserID, OccurredAt: a.At})
	if err != nil {
		return domain.AppendResult{}, err
	}
	res, err := store.Append(ctx, room.Stream(id), room.AuditExpectation(), ev)
	if domain.ErrorCode(err) == domain.ECONFLICT {
		return domain.AppendResult{}, room.ErrNotFound // StreamExists failed: no such room
	}
	if err != nil {
		return domain.AppendResult{}, fmt.Errorf("room %d: record %s access by %s: %w", id, a.Interface, a.UserID, err)
	}
	return res, nil
}

// Audit returns room id for auditor, who need not own it, and records the
// read in the room's stream as AuditAccessed through iface (one of the
// room.Interface* names). A missing or deleted room is room.ErrNotFound and
// records nothing. The returned Version is that of the AuditAccessed
// event. The Service does not check roles: whether auditor may audit is
// the transport's decision (a role in the token).
func (s *Service) Audit(ctx context.Context, id int64, auditor, iface string) (RoomInfo, error) {
	r := s.lock(id)
	st, err := s.refresh(ctx, id, r)
	var ri RoomInfo
	exists := err == nil && st.Exists()
	if exists {
		ri = info(st)
	}
	s.unlock(r)
	if err != nil {
		return RoomInfo{}, err
	}
	if !exists {
		return RoomInfo{}, room.ErrNotFound
	}
	eventID, err := domain.NewUUID(s.random)
	if err != nil {
		return RoomInfo{}, fmt.Errorf("room %d: audit event id: %w", id, err)
	}
	res, err := RecordAccess(ctx, timedAppender{s: s}, id, eventID, room.AuditAccessed{UserID: auditor, Interface: iface, At: s.now()})
	if err != nil {
		return RoomInfo{}, err
	}
	ri.Version = res.Version
	return ri, nil
}

// timedAppender appends through the Service, so that every append is
// measured, each within timeout when it is set.
type timedAppender struct {
	s       *Service
	timeout time.Duration
}

func (t timedAppender) Append(ctx context.Context, stream string, exp domain.ExpectedVersion, events ...domain.EventData) (domain.AppendResult, error) {
	if t.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.timeout)
		defer cancel()
	}
	return t.s.appendTimed(ctx, stream, exp, events)
}
