package chat

import (
	"context"
	"fmt"
	"time"

	"github.com/parleychat/parley/domain/room"
)

// IdleRooms lists rooms not erased whose last activity is before a time
// (the ChatLog).
type IdleRooms interface {
	IdleRooms(ctx context.Context, before time.Time, limit int) ([]int64, error)
}

// retentionPage is how many idle rooms EraseIdle asks for at once.
const retentionPage = 100

// RetentionEraser is who erases rooms for retention, as RoomErased
// records it.
const RetentionEraser = "retention"

// EraseIdle erases every room idle longer than retention (see Erase), with
// reason room.ErasedByRetention, and returns how many it erased. It stops
// at ctx's end or the first failure; the next run goes on from there.
func (s *Service) EraseIdle(ctx context.Context, idle IdleRooms, retention time.Duration) (int, error) {
	before := s.now().Add(-retention)
	erased := 0
	for {
		ids, err := idle.IdleRooms(ctx, before, retentionPage)
		if err != nil {
			return erased, fmt.Errorf("retention: %w", err)
		}
		progress := false
		for _, id := range ids {
			done, err := s.Erase(ctx, id, Eraser{By: RetentionEraser, Reason: room.ErasedByRetention})
			if err != nil {
				return erased, fmt.Errorf("retention (%d rooms erased): %w", erased, err)
			}
			if done {
				erased++
				progress = true
			}
		}
		// The read model lags the log: rooms just erased may be listed
		// again. A page that erased nothing ends the run.
		if len(ids) < retentionPage || !progress {
			return erased, nil
		}
	}
}
