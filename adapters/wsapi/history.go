package wsapi

import (
	"context"
	"errors"
	"fmt"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
)

// ProjectedHistory loads a room's history from a read model (Base, which
// may lag or be nil) and folds the stream's events after the version it
// reflects, so the result is as fresh as the stream.
type ProjectedHistory struct {
	// Base returns the projected messages and the version they reflect
	// (domain.NoVersion when the room is not projected yet).
	Base   func(ctx context.Context, roomID int64) ([]room.Message, int64, error)
	Stream domain.StreamReader
}

// History implements HistoryLoader. It reads the stream from the base's
// version on, so the event there gives the hash of the history; a base
// whose version the stream does not hold (a read model ahead of a log
// that lost its tail) is dropped and the stream folded from its start.
func (p ProjectedHistory) History(ctx context.Context, roomID int64) (*room.History, string, error) {
	h := room.NewHistory()
	if p.Base != nil {
		msgs, v, err := p.Base(ctx, roomID)
		if err != nil {
			return nil, "", fmt.Errorf("load history of room %d: %w", roomID, err)
		}
		h.Load(msgs, v)
	}
	hash := ""
	// fold applies the stream from version from on; with a base, the
	// first event must be the base's, or it reports restart.
	fold := func(from int64) (restart bool, err error) {
		based := from == h.Version && h.Version >= 0
		for ev, err := range domain.StreamEvents(ctx, p.Stream, room.Stream(roomID), domain.ReadStreamOptions{From: from, Limit: 1000}) {
			if errors.Is(err, domain.ErrStreamNotFound) {
				return false, nil
			}
			if err != nil {
				return false, fmt.Errorf("load history of room %d: %w", roomID, err)
			}
			if based && ev.Version != h.Version {
				return true, nil
			}
			based = false
			if err := h.Apply(ev); err != nil {
				return false, fmt.Errorf("load history of room %d: %w", roomID, err)
			}
			if ev.Version == h.Version {
				hash = domain.ChainHash(ev.Metadata)
			}
		}
		return based, nil // based still: the stream ends before the base
	}
	restart, err := fold(max(h.Version, 0))
	if restart && err == nil {
		h = room.NewHistory() // the base is ahead of the stream
		_, err = fold(0)
	}
	if err != nil {
		return nil, "", err
	}
	return h, hash, nil
}
