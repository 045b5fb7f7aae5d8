package chat

import (
	"container/list"
	"errors"
	"sync"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
)

// DefaultMaxRooms is how many rooms' states a Service keeps folded.
const DefaultMaxRooms = 10000

// cachedRoom is one room's state as far as it has been folded; its mu
// serialises this process's commands on the room.
type cachedRoom struct {
	id    int64
	mu    sync.Mutex
	state *room.State
	el    *list.Element // in roomCache.order; nil once evicted
}

// roomCache keeps the folded states of the rooms used last, at most max
// of them, so that a command folds only the events since the previous one.
// It is a cache, not the truth: every use reads the stream after the state
// it holds, and an evicted room is folded again from the start. Rooms that
// turn out not to exist are not kept at all (see done), so a client probing
// room ids costs no memory.
//
// An entry evicted while in use stays valid for its holder; a second
// entry for the same room may then exist for a while. That costs only
// serialisation: commands append at exact versions and retry on conflicts.
type roomCache struct {
	mu    sync.Mutex
	max   int
	order *list.List // of *cachedRoom, most recently used first
	rooms map[int64]*cachedRoom
}

func newRoomCache(max int) *roomCache {
	return &roomCache{max: max, order: list.New(), rooms: map[int64]*cachedRoom{}}
}

// get returns room id's entry, creating it, and marks it used.
func (c *roomCache) get(id int64) *cachedRoom {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r := c.rooms[id]; r != nil {
		c.order.MoveToFront(r.el)
		return r
	}
	r := &cachedRoom{id: id, state: room.NewState()}
	r.el = c.order.PushFront(r)
	c.rooms[id] = r
	for c.order.Len() > c.max {
		c.removeLocked(c.order.Back().Value.(*cachedRoom))
	}
	return r
}

func (c *roomCache) removeLocked(r *cachedRoom) {
	if r.el == nil || c.rooms[r.id] != r {
		return
	}
	c.order.Remove(r.el)
	r.el = nil
	delete(c.rooms, r.id)
}

// done is called by the holder of r.mu before it unlocks: a room the
// stream does not have (never created) is dropped at once, a negative
// entry living only as long as the call that made it.
func (c *roomCache) done(r *cachedRoom) {
	if r.state.Version >= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeLocked(r)
}

// len returns how many rooms are kept.
func (c *roomCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

// lock returns room id's entry, locked; unlock it with s.unlock.
func (s *Service) lock(id int64) *cachedRoom {
	r := s.rooms.get(id)
	r.mu.Lock()
	return r
}

func (s *Service) unlock(r *cachedRoom) {
	s.rooms.done(r)
	r.mu.Unlock()
}

// rewound reports whether err is a conflict showing the stream shorter
// than r's state (a database that lost its last, unflushed commits in a
// crash), and then forgets the state so that the next refresh folds the
// stream again from the start. The caller holds r.mu.
func rewound(r *cachedRoom, err error) bool {
	var ce *domain.ConflictError
	if !errors.As(err, &ce) || ce.Actual >= r.state.Version {
		return false
	}
	r.state = room.NewState()
	return true
}
