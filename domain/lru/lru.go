// Package lru is a bounded map that drops its least recently used entry
// when full: the one such cache the audit chain's stream heads and the
// rooms' unwrapped data keys both keep.
package lru

import (
	"container/list"
	"sync"
)

// Cache holds a bounded number of entries; it is safe for concurrent use.
type Cache[K comparable, V any] struct {
	mu    sync.Mutex
	max   int
	order *list.List // of *entry, most recently used first
	items map[K]*list.Element
}

type entry[K comparable, V any] struct {
	key K
	val V
}

// New returns an empty Cache of at most size entries (at least 1).
func New[K comparable, V any](size int) *Cache[K, V] {
	return &Cache[K, V]{max: max(size, 1), order: list.New(), items: map[K]*list.Element{}}
}

// Get returns k's value and marks it used.
func (c *Cache[K, V]) Get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[k]
	if !ok {
		var zero V
		return zero, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*entry[K, V]).val, true
}

// Update sets k's value to f of the one held (ok false when none), marks
// it used, and drops the least recently used entries beyond the bound.
// f runs under the cache's lock: keep it short.
func (c *Cache[K, V]) Update(k K, f func(old V, ok bool) V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[k]; ok {
		e := el.Value.(*entry[K, V])
		e.val = f(e.val, true)
		c.order.MoveToFront(el)
		return
	}
	var zero V
	c.items[k] = c.order.PushFront(&entry[K, V]{key: k, val: f(zero, false)})
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.items, last.Value.(*entry[K, V]).key)
	}
}

// Put sets k's value.
func (c *Cache[K, V]) Put(k K, v V) { c.Update(k, func(V, bool) V { return v }) }

// Remove drops k.
func (c *Cache[K, V]) Remove(k K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[k]; ok {
		c.order.Remove(el)
		delete(c.items, k)
	}
}

// RemoveIf drops every entry for which drop is true and returns how many
// it dropped. drop runs under the cache's lock: keep it short.
func (c *Cache[K, V]) RemoveIf(drop func(K, V) bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for el := c.order.Front(); el != nil; {
		next := el.Next()
		if e := el.Value.(*entry[K, V]); drop(e.key, e.val) {
			c.order.Remove(el)
			delete(c.items, e.key)
			n++
		}
		el = next
	}
	return n
}

// Len returns how many entries the cache holds.
func (c *Cache[K, V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
