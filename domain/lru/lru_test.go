package lru

import (
	"sync"
	"testing"
)

func TestCache(t *testing.T) {
	c := New[string, int](2)
	c.Put("a", 1)
	c.Put("b", 2)
	if v, ok := c.Get("a"); !ok || v != 1 { // a is now the most recent
		t.Fatalf("Get(a) = %d, %v", v, ok)
	}
	c.Put("c", 3) // drops b, the least recently used
	for _, tc := range []struct {
		k    string
		want int
		ok   bool
	}{{"a", 1, true}, {"b", 0, false}, {"c", 3, true}} {
		if v, ok := c.Get(tc.k); ok != tc.ok || v != tc.want {
			t.Errorf("Get(%s) = %d, %v; want %d, %v", tc.k, v, ok, tc.want, tc.ok)
		}
	}
	c.Update("a", func(old int, ok bool) int {
		if !ok || old != 1 {
			t.Errorf("Update(a) saw %d, %v", old, ok)
		}
		return old + 10
	})
	if v, _ := c.Get("a"); v != 11 {
		t.Errorf("after Update a = %d, want 11", v)
	}
	c.Remove("a")
	if _, ok := c.Get("a"); ok || c.Len() != 1 {
		t.Errorf("after Remove: a present %v, len %d", ok, c.Len())
	}
}

func TestRemoveIf(t *testing.T) {
	c := New[int, string](10)
	for i := range 6 {
		c.Put(i, map[bool]string{true: "even", false: "odd"}[i%2 == 0])
	}
	if n := c.RemoveIf(func(k int, v string) bool { return v == "even" }); n != 3 {
		t.Errorf("RemoveIf dropped %d, want 3", n)
	}
	for i := range 6 {
		if _, ok := c.Get(i); ok != (i%2 == 1) {
			t.Errorf("after RemoveIf, %d present: %v", i, ok)
		}
	}
	c.Put(6, "even") // the list and the map still agree
	if c.Len() != 4 {
		t.Errorf("Len = %d, want 4", c.Len())
	}
}

func TestCacheConcurrent(t *testing.T) {
	c := New[int, int](50)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				c.Update(i%100, func(old int, _ bool) int { return old + g })
				c.Get(i % 37)
			}
		})
	}
	wg.Wait()
	if n := c.Len(); n > 50 {
		t.Errorf("Len = %d over the bound 50", n)
	}
}
