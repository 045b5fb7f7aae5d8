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

// OwnedRooms lists the rooms a user owns, deleted ones included.
type OwnedRooms interface {
	RoomIDsOf(ctx context.Context, owner string) ([]int64, error)
}

// EraseUser erases every room owner owns (see Erase), deleted ones
// included, and returns the ids of those erased now. It stops at the first
// failure; running it again finishes the rest. The rooms come from a read
// model (Deps.Owned), so a room created in the last moment before it may
// be missed: its owner can erase it again.
func (s *Service) EraseUser(ctx context.Context, owner string, e Eraser) ([]int64, error) {
	if s.owned == nil {
		return nil, domain.Errorf(domain.EINTERNAL, "erasing a user's rooms needs a list of their rooms, which this process was not given")
	}
	ids, err := s.owned.RoomIDsOf(ctx, owner)
	if err != nil {
		return nil, fmt.Errorf("erase the rooms of %s: %w", owner, err)
	}
	e.Owner = owner
	erased := []int64{}
	for _, id := range ids {
		done, err := s.Erase(ctx, id, e)
		if err != nil {
			return erased, fmt.Errorf("erase the rooms of %s (%d of %d erased): %w", owner, len(erased), len(ids), err)
		}
		if done {
			erased = append(erased, id)
		}
	}
	return erased, nil
}

// EraseMine erases every room of user at their request (POST
// /api/me/erase): EraseUser by user, reason room.ErasedByOwner.
func (s *Service) EraseMine(ctx context.Context, user string) ([]int64, error) {
	return s.EraseUser(ctx, user, Eraser{By: user, Reason: room.ErasedByOwner})
}
