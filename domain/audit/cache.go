package audit

import (
	"container/list"
	"sync"
)

// headCache remembers, for the most recently used streams, the highest
// version the store has shown and that event's hash. It is safe for
// concurrent use.
type headCache struct {
	mu      sync.Mutex
	max     int
	order   *list.List // of *headEntry, most recently used first
	streams map[string]*list.Element
}

type headEntry struct {
	stream  string
	version int64
	hash    Hash
}

func newHeadCache(max int) *headCache {
	return &headCache{max: max, order: list.New(), streams: make(map[string]*list.Element)}
}

// get returns the hash of stream's event at version, if that is the
// version remembered.
func (c *headCache) get(stream string, version int64) (Hash, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.streams[stream]
	if !ok {
		return Hash{}, false
	}
	e := el.Value.(*headEntry)
	if e.version != version {
		return Hash{}, false
	}
	c.order.MoveToFront(el)
	return e.hash, true
}

// put remembers that stream's event at version has hash, unless a later
// version is remembered already.
func (c *headCache) put(stream string, version int64, hash Hash) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.streams[stream]; ok {
		e := el.Value.(*headEntry)
		if version >= e.version {
			e.version, e.hash = version, hash
		}
		c.order.MoveToFront(el)
		return
	}
	c.streams[stream] = c.order.PushFront(&headEntry{stream: stream, version: version, hash: hash})
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.streams, last.Value.(*headEntry).stream)
	}
}

// forget drops what is remembered of stream.
func (c *headCache) forget(stream string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.streams[stream]; ok {
		c.order.Remove(el)
		delete(c.streams, stream)
	}
}

// len returns how many streams are remembered.
func (c *headCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
