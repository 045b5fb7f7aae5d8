package room

import "github.com/parleychat/parley/domain"

// TypeRoomErased is the stored type of RoomErased. It is part of the log's
// format: never rename it.
const TypeRoomErased = "RoomErased"

// Reasons a room is erased, as RoomErased records them; an operator's
// erasure records the reason given.
const (
	// ErasedByOwner: the owner deleted the room or erased their data.
	ErasedByOwner = "owner_request"
	// ErasedByRetention: the room was idle longer than the retention.
	ErasedByRetention = "retention"
)

// ReasonErased ends an answer streaming while its room is erased.
const ReasonErased = "erased"

// RoomErased records that the room's data key was destroyed: everything
// sealed under it (what was said in the room) is gone. It carries who, why
// and, in its record, when; never any content. Appended after the key is
// destroyed.
type RoomErased struct {
	RoomID   int64  `json:"room_id"`
	ErasedBy string `json:"erased_by"`
	Reason   string `json:"reason"`
}

// EventType implements Event.
func (RoomErased) EventType() string { return TypeRoomErased }

// Erase decides on erasing the room for by (its owner or an operator; the
// caller authorises): an open answer fails with ReasonErased and no text,
// then RoomErased. Erasing an erased room decides nothing, so erasure is
// idempotent; a deleted room can still be erased.
func Erase(s *State, by, reason string) ([]Event, error) {
	if s.Version < 0 {
		return nil, ErrNotFound
	}
	if s.Erased {
		return nil, nil
	}
	if reason == "" {
		return nil, domain.Errorf(domain.EINVALID, "an erasure needs a reason")
	}
	var out []Event
	if s.Open != nil {
		out = append(out, AnswerFailed{AnswerID: s.Open.AnswerID, Reason: ReasonErased})
	}
	return append(out, RoomErased{RoomID: s.ID, ErasedBy: by, Reason: reason}), nil
}
