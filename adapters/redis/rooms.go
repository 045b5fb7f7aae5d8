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

// groupRooms groups the batch's room events by room, in first-seen order,
// with the owner when the batch tells it: a RoomCreated's, else the first
// MessagePosted's. It decodes only those events (the fold decodes what it
// folds); one that does not decode is an EventError. Events of other
// streams, and events the memory does not fold (memory.Folds: answer
// chunks above all), are skipped: a batch of chunks writes nothing but the
// checkpoint.
func groupRooms(batch []domain.RecordedEvent) ([]*roomBatch, error) {
	var out []*roomBatch
	byID := map[int64]*roomBatch{}
	for _, ev := range batch {
		if !memory.Folds(ev.Type) && ev.Type != room.TypeRoomCreated {
			continue
		}
		id, ok := room.ParseStream(ev.Stream)
		if !ok {
			continue
		}
		r := byID[id]
		if r == nil {
			r = &roomBatch{id: id}
			byID[id] = r
			out = append(out, r)
		}
		if ev.Type == room.TypeRoomCreated || ev.Type == room.TypeMessagePosted && r.owner == "" {
			owner, err := ownerOf(ev)
			if err != nil {
				return nil, eventError(ev, err)
			}
			r.owner = owner
		}
		r.events = append(r.events, ev)
	}
	return out, nil
}

// ownerOf returns the owner a RoomCreated names, or the poster of a
// MessagePosted (only a room's owner posts in it).
func ownerOf(ev domain.RecordedEvent) (string, error) {
	p, err := room.Decode(ev, false)
	if err != nil {
		return "", err
	}
	switch e := p.(type) {
	case room.RoomCreated:
		return e.OwnerID, nil
	case room.MessagePosted:
		return e.UserID, nil
	}
	return "", nil
}

// eventError is the EventError of ev failing to decode with err. The
// EventError names the event, so room.Decode's naming of it is dropped.
func eventError(ev domain.RecordedEvent, err error) *projections.EventError {
	if cause := errors.Unwrap(err); cause != nil {
		err = cause
	}
	return projections.NewEventError(ev, err)
}

// firstAfter returns the first of events after position cp, or nil.
func firstAfter(events []domain.RecordedEvent, cp domain.Position) *domain.RecordedEvent {
	for i := range events {
		if cp.Less(events[i].Position) {
			return &events[i]
		}
	}
	return nil
}

// lost reports whether room r's memory, stored (or not) at version have,
// is not where its batch's first event at version next continues it: its
// owner is unknown, it is gone from Redis while its stream is not new, or
// Redis lost writes that its stream's events between have and next made.
// The memory skips the events it does not fold (answer chunks, retrieval
// records), so its version lags its stream's across an answer; only when
// the events between hold one it folds did it lose any. When this process
// saw them all (noteSkips, and the batch's own) it knows; otherwise it
// reads them from the log.
func (m *Memory) lost(ctx context.Context, r *roomBatch, batch []domain.RecordedEvent, stored bool, have, next int64) (bool, error) {
	switch {
	case r.owner == "":
		return true, nil
	case have >= next-1:
		return false, nil
	case !stored:
		return true, nil
	case m.skippedBetween(r.id, batch, have, next):
		return false, nil
	}
	opts := domain.ReadStreamOptions{From: have + 1, Limit: int(min(next-have-1, domain.DefaultReadLimit))}
	for ev, err := range domain.StreamEvents(ctx, m.log, room.Stream(r.id), opts) {
		if err != nil {
			return false, fmt.Errorf("room %d: read the events its memory skipped: %w", r.id, err)
		}
		if ev.Version >= next {
			return false, nil
		}
		if memory.Folds(ev.Type) {
			return true, nil
		}
	}
	return false, nil
}

// skipRun is a room's versions lo..hi, every one an event the memory does
// not fold, that this process saw right after the last event it folded
// (at lo-1); hi is lo-1 while there are none.
type skipRun struct{ lo, hi int64 }

// noteSkips records, after the batch was applied, the runs of events it
// skipped per room. A room's run starts after each event the memory folds
// and ends with its answer (the event after an answer's end is folded
// anyway), so the map holds the rooms whose answers stream.
func (m *Memory) noteSkips(batch []domain.RecordedEvent) {
	m.skipMu.Lock()
	defer m.skipMu.Unlock()
	if m.skips == nil {
		m.skips = map[int64]skipRun{}
	}
	for _, ev := range batch {
		id, ok := room.ParseStream(ev.Stream)
		if !ok {
			continue
		}
		switch ev.Type {
		case room.TypeAnswerCompleted, room.TypeAnswerFailed, room.TypeAnswerCancelled, room.TypeRoomDeleted:
			delete(m.skips, id)
			continue
		}
		if memory.Folds(ev.Type) || ev.Type == room.TypeRoomCreated {
			m.skips[id] = skipRun{lo: ev.Version + 1, hi: ev.Version}
			continue
		}
		switch run, ok := m.skips[id]; {
		case ok && ev.Version == run.hi+1:
			run.hi++
			m.skips[id] = run
		case ok && ev.Version >= run.lo && ev.Version <= run.hi:
		default:
			delete(m.skips, id) // a gap this process did not see
		}
	}
}

// skippedBetween reports whether this process saw every event of room id
// after version have and before next, and none is one the memory folds:
// the run noteSkips recorded, continued by the batch's own.
func (m *Memory) skippedBetween(id int64, batch []domain.RecordedEvent, have, next int64) bool {
	m.skipMu.Lock()
	run, ok := m.skips[id]
	m.skipMu.Unlock()
	if !ok || run.lo != have+1 {
		return false
	}
	stream := room.Stream(id)
	for _, ev := range batch {
		if ev.Stream == stream && ev.Version == run.hi+1 && ev.Version < next && !memory.Folds(ev.Type) {
			run.hi++
		}
	}
	return run.hi >= next-1
}

// rebuildRoom folds room r's stream from its start through version upTo
// (the event before the batch's first), learning its owner from it when
// the batch did not tell it, warns, and counts the room as rebuilt.
func (m *Memory) rebuildRoom(ctx context.Context, r *roomBatch, upTo int64) (*memory.Conversation, error) {
	c := memory.NewConversation()
	if upTo >= 0 {
		for ev, err := range domain.StreamEvents(ctx, m.log, room.Stream(r.id), domain.ReadStreamOptions{Limit: domain.DefaultReadLimit}) {
			if errors.Is(err, domain.ErrStreamNotFound) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("room %d: rebuild its vanished memory from the log: %w", r.id, err)
			}
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
