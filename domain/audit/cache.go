package audit

import "github.com/parleychat/parley/domain/lru"

// headCache remembers, for the most recently used streams, the highest
// version the store has shown and that event's hash. It is safe for
// concurrent use.
type headCache struct{ heads *lru.Cache[string, headEntry] }

type headEntry struct {
	version int64
	hash    Hash
}

func newHeadCache(max int) *headCache {
	return &headCache{heads: lru.New[string, headEntry](max)}
}

// get returns the hash of stream's event at version, if that is the
// version remembered.
func (c *headCache) get(stream string, version int64) (Hash, bool) {
	e, ok := c.heads.Get(stream)
	if !ok || e.version != version {
		return Hash{}, false
	}
	return e.hash, true
}

// put remembers that stream's event at version has hash, unless a later
// version is remembered already.
func (c *headCache) put(stream string, version int64, hash Hash) {
	c.heads.Update(stream, func(old headEntry, ok bool) headEntry {
		if ok && version < old.version {
			return old
		}
		return headEntry{version: version, hash: hash}
	})
}

// forget drops what is remembered of stream.
func (c *headCache) forget(stream string) { c.heads.Remove(stream) }

// len returns how many streams are remembered.
func (c *headCache) len() int { return c.heads.Len() }
