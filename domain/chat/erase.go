package chat

import (
	"context"
	"fmt"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
)

// KeyShredder destroys rooms' data keys (privacy.Keyring).
type KeyShredder interface {
	// Destroy destroys room's key for good; destroying a destroyed key is
	// not an error.
	Destroy(ctx context.Context, room int64) (bool, error)
}

// Eraser is who erases a room and why, as RoomErased records it.
type Eraser struct {
	// By is the owner's user id, or an operator's name.
	By string
	// Reason is room.ErasedByOwner, room.ErasedByRetention or an
	// operator's reason.
	Reason string
	// Owner, when set, must own the room (a user erasing their own);
	// operators and retention leave it empty.
	Owner string
}

// Erase erases room id by crypto-shredding: its data key is destroyed
// first, the one step that must succeed, then an answer streaming in it
// fails with reason "erased" (and no text) and RoomErased is appended, and
// this process stops generating it. Erasing an erased room does nothing
// and returns false, so erasure is idempotent; when the key was destroyed
// but RoomErased could not be written, running it again finishes it.
func (s *Service) Erase(ctx context.Context, id int64, e Eraser) (bool, error) {
	if s.keys == nil {
		return false, domain.Errorf(domain.EINTERNAL, "erasure needs the rooms' data keys, which this process was not given")
	}
	st, err := s.state(ctx, id)
	if err != nil {
		return false, err
	}
	if st.Version < 0 {
		return false, room.ErrNotFound
	}
	if e.Owner != "" && st.Owner != e.Owner {
		return false, room.ErrForbidden
	}
	if st.Erased {
		return false, nil
	}
	if _, err := s.keys.Destroy(ctx, id); err != nil {
		return false, fmt.Errorf("erase room %d: %w", id, err)
	}
	evs, _, err := s.execute(ctx, id, domain.Metadata{UserID: e.By}, func(_ int, ev room.Event) domain.UUID { return eventID(ev) },
		func(st *room.State) ([]room.Event, error) { return room.Erase(st, e.By, e.Reason) })
	if err != nil {
		return false, fmt.Errorf("erase room %d: its key is destroyed, but RoomErased was not recorded (erase it again): %w", id, err)
	}
	s.stopLocal(id, evs)
	return len(evs) > 0, nil
}
