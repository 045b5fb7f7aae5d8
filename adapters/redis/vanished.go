package redis

import (
	"context"
	"errors"
	"fmt"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/memory"
	"github.com/parleychat/parley/domain/room"
	"github.com/parleychat/parley/projections"
)

// firstAfter returns the first of events after position cp, or nil.
func firstAfter(events []domain.RecordedEvent, cp domain.Position) *domain.RecordedEvent {
	for i := range events {
		if cp.Less(events[i].Position) {
			return &events[i]
		}
	}
	return nil
}

// rebuildRoom folds room r's stream from its start through version upTo
// (the event before the batch's first), learning its owner from it when
// the batch did not tell it, warns, and counts the room as rebuilt.
func (m *Memory) rebuildRoom(ctx context.Context, r *roomBatch, upTo int64) (*memory.Conversation, error) {
	c := memory.NewConversation()
	for from := int64(0); from <= upTo; {
		evs, err := m.log.ReadStream(ctx, room.Stream(r.id), domain.ReadStreamOptions{From: from, Limit: domain.DefaultReadLimit})
		if errors.Is(err, domain.ErrStreamNotFound) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("room %d: rebuild its vanished memory from the log: %w", r.id, err)
		}
		for _, ev := range evs {
			if ev.Version > upTo {
				break
			}
			if r.owner == "" && (ev.Type == room.TypeRoomCreated || ev.Type == room.TypeMessagePosted) {
				if owner, err := ownerOf(ev); err != nil {
					return nil, eventError(ev, err)
				} else if owner != "" {
					r.owner = owner
				}
			}
			if err := c.Apply(ev); err != nil {
				return nil, eventError(ev, err)
			}
		}
		if len(evs) < domain.DefaultReadLimit {
			break
		}
		from = evs[len(evs)-1].Version + 1
	}
	if r.owner == "" {
		return nil, projections.NewEventError(r.events[0], fmt.Errorf("room %d has no owner: its stream has no RoomCreated", r.id))
	}
	m.logger.Warn("redis memory: a room's memory had vanished from Redis (flushed, restarted empty or evicted); rebuilt it from the room's stream",
		"projection", m.name, "room_id", r.id, "version", c.Version)
	if m.onLost != nil {
		m.onLost()
	}
	return c, nil
}
