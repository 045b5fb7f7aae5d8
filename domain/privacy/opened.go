package privacy

import (
	"bytes"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/lru"
)

// DefaultOpenedCacheSize bounds the events a Store keeps opened: about
// 400 bytes each, so some 13 MB. A room's stream is read again on every
// question (its state, its memory) and by the live subscription, right
// after it was written: each event is opened about four times in a
// process that wrote it, and this makes three of those a lookup.
const DefaultOpenedCacheSize = 32768

// openedCache holds events this process has sealed or opened: their
// stored bytes and their clear data, by event id. An entry serves only the
// same stored bytes under the same stream and type (what its envelope is
// bound to), so a hit returns exactly what opening would, and it is used
// only while the room's key exists: the Store checks the key before it
// looks here, and drops a room's entries when it is erased.
type openedCache struct {
	c *lru.Cache[domain.UUID, openedEvent]
}

type openedEvent struct {
	room         int64
	stream, typ  string
	sealed, data []byte
}

func newOpenedCache(size int) openedCache {
	return openedCache{c: lru.New[domain.UUID, openedEvent](size)}
}

// get returns a copy of the clear data of ev, when held.
func (o openedCache) get(ev *domain.RecordedEvent) ([]byte, bool) {
	e, ok := o.c.Get(ev.ID)
	if !ok || e.stream != ev.Stream || e.typ != ev.Type || !bytes.Equal(e.sealed, ev.Data) {
		return nil, false
	}
	return bytes.Clone(e.data), true
}

// put remembers that the event id of type typ in room's stream, stored as
// sealed, opens to data. Neither slice may change afterwards.
func (o openedCache) put(room int64, stream string, id domain.UUID, typ string, sealed, data []byte) {
	o.c.Put(id, openedEvent{room: room, stream: stream, typ: typ, sealed: sealed, data: data})
}

// drop forgets every event of room.
func (o openedCache) drop(room int64) {
	o.c.RemoveIf(func(_ domain.UUID, e openedEvent) bool { return e.room == room })
}
