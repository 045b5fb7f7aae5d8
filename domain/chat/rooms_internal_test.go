package chat

import (
	"crypto/rand"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/adapters/inmem"
	"github.com/parleychat/parley/domain/room"
)

// TestRoomCacheIsBounded: a client probing room ids leaves nothing behind,
// and the rooms kept never exceed MaxRooms, the least recently used going
// first.
func TestRoomCacheIsBounded(t *testing.T) {
	svc := NewService(Config{MaxRooms: 3}, Deps{Store: inmem.New(nil), Now: time.Now, Random: rand.Reader})
	for id := int64(1); id <= 1000; id++ {
		if _, err := svc.Room(t.Context(), id, "42"); err != room.ErrNotFound {
			t.Fatalf("room %d: %v, want not found", id, err)
		}
	}
	if n := svc.rooms.len(); n != 0 {
		t.Errorf("after probing 1000 missing rooms the cache holds %d, want 0", n)
	}
	var ids []int64
	for range 5 {
		r, err := svc.CreateRoom(t.Context(), "42", "t")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	if n := svc.rooms.len(); n != 3 {
		t.Errorf("after 5 rooms the cache holds %d, want MaxRooms (3)", n)
	}
	if _, ok := svc.rooms.rooms[ids[0]]; ok {
		t.Error("the least recently used room is still cached")
	}
	// An evicted room still works: it is folded again from its stream.
	if ri, err := svc.Room(t.Context(), ids[0], "42"); err != nil || ri.ID != ids[0] {
		t.Errorf("evicted room: %+v, %v", ri, err)
	}
	// Concurrent use with evictions keeps every room consistent.
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() {
			for range 50 {
				if _, err := svc.Room(t.Context(), id, "42"); err != nil {
					t.Errorf("room %d: %v", id, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := svc.rooms.len(); n > 3 {
		t.Errorf("cache holds %d rooms, over MaxRooms", n)
	}
}
