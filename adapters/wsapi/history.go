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

// History implements HistoryLoader.
func (p ProjectedHistory) History(ctx context.Context, roomID int64) (*room.History, error) {
	h := room.NewHistory()
	if p.Base != nil {
		msgs, v, err := p.Base(ctx, roomID)
		if err != nil {
			return nil, fmt.Errorf("load history of room %d: %w", roomID, err)
		}
		h.Load(msgs, v)
	}
	for {
		evs, err := p.Stream.ReadStream(ctx, room.Stream(roomID), domain.ReadStreamOptions{From: h.Version + 1, Limit: 1000})
		if errors.Is(err, domain.ErrStreamNotFound) {
			return h, nil
		}
		if err != nil {
			return nil, fmt.Errorf("load history of room %d: %w", roomID, err)
		}
		for _, ev := range evs {
			if err := h.Apply(ev); err != nil {
				return nil, fmt.Errorf("load history of room %d: %w", roomID, err)
			}
		}
		if len(evs) < 1000 {
			return h, nil
		}
	}
}
