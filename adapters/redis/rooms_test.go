package redis_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/adapters/redis"
	"github.com/parleychat/parley/adapters/redis/redistest"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
)

// TestVanishedMemoryIsRebuiltFromTheLog: the read model's keys vanish
// (a FLUSHALL, a Redis restarted empty) between two batches. The next
// batch — whether it tells the room's owner or not — rebuilds each room's
// memory from the room's stream, with a warning and a count, and carries
// on: the result is what applying the whole log in one go gives.
func TestVanishedMemoryIsRebuiltFromTheLog(t *testing.T) {
	log := sampleLog(t)
	evs := readAll(t, log)
	c := redistest.Client(t)

	// What a memory that never lost anything holds.
	refPrefix := redistest.Prefix(t, c)
	ref := newMemory(t, c, refPrefix, "")
	if err := ref.Apply(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	want := dump(t, c, refPrefix, false)

	for _, split := range []int{len(evs) - 1, len(evs) - 3, 12} {
		prefix := redistest.Prefix(t, c)
		var rebuilt atomic.Int32
		m, err := redis.NewMemory(c, redis.MemoryConfig{Prefix: prefix, Log: log, Rebuilt: func() { rebuilt.Add(1) }})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Apply(t.Context(), evs[:split]); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Clear(t.Context()); err != nil { // the flush
			t.Fatal(err)
		}
		if err := m.Apply(t.Context(), evs[split:]); err != nil {
			t.Fatalf("after the keys vanished, split at %d: %v, want the rooms rebuilt from the log", split, err)
		}
		// The rooms with events after the flush are whole again; the others
		// are rebuilt by their next event (prompts read the stream meanwhile).
		wantNow := map[string]map[string]string{"memory:owners": {}}
		for _, ev := range evs[split:] {
			id, _ := room.ParseStream(ev.Stream)
			owner := "u" + strconv.FormatInt(id, 10)
			key := "memory:" + strconv.FormatInt(id, 10) + ":" + owner
			wantNow[key] = want[key]
			wantNow["memory:owners"][strconv.FormatInt(id, 10)] = owner
		}
		if diff := cmp.Diff(wantNow, dump(t, c, prefix, false)); diff != "" {
			t.Errorf("split at %d: memory after the rebuild (-want +got):\n%s", split, diff)
		}
		if rebuilt.Load() == 0 {
			t.Errorf("split at %d: no room counted as rebuilt", split)
		}
	}

	// A memory that lost nothing rebuilds nothing, and does not read the
	// log to know: it saw the chunks it skipped.
	prefix := redistest.Prefix(t, c)
	var rebuilt atomic.Int32
	counted := &countingLog{StreamReader: log}
	m, err := redis.NewMemory(c, redis.MemoryConfig{Prefix: prefix, Log: counted, Rebuilt: func() { rebuilt.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	for i := range evs {
		if err := m.Apply(t.Context(), evs[i:i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if n := rebuilt.Load(); n != 0 {
		t.Errorf("%d rooms rebuilt applying an intact log event by event, want 0", n)
	}
	if n := counted.reads.Load(); n != 0 {
		t.Errorf("%d reads of the log applying an intact log event by event, want 0", n)
	}
}

// countingLog counts the stream reads that reach the log.
type countingLog struct {
	domain.StreamReader
	reads atomic.Int32
}

func (r *countingLog) ReadStream(ctx context.Context, stream string, opts domain.ReadStreamOptions) ([]domain.RecordedEvent, error) {
	r.reads.Add(1)
	return r.StreamReader.ReadStream(ctx, stream, opts)
}

// TestMemoryBehindItsStreamIsRebuilt: Redis comes back with older room
// keys than the checkpoint (writes lost, an older snapshot restored). The
// memory skips answer chunks, so its version lags its stream's across an
// answer and that alone is no loss; a question or summary missing between
// is, and the room is rebuilt from its stream.
func TestMemoryBehindItsStreamIsRebuilt(t *testing.T) {
	log := sampleLog(t)
	evs := readAll(t, log)
	c := redistest.Client(t)
	refPrefix := redistest.Prefix(t, c)
	if err := newMemory(t, c, refPrefix, "").Apply(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	want := dump(t, c, refPrefix, false)

	// Room 1's memory as it stood after its first exchange; the log goes on
	// to its second exchange, then its summary.
	var k, j int
	for i, ev := range evs {
		if ev.Stream == room.Stream(1) && ev.Version == 4 {
			k = i + 1
		}
		if ev.Stream == room.Stream(1) && ev.Type == room.TypeSummaryUpdated {
			j = i
		}
	}
	prefix := redistest.Prefix(t, c)
	var rebuilt atomic.Int32
	m, err := redis.NewMemory(c, redis.MemoryConfig{Prefix: prefix, Log: log, Rebuilt: func() { rebuilt.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(t.Context(), evs[:k]); err != nil {
		t.Fatal(err)
	}
	old := dump(t, c, prefix, false)
	for i := k; i < j; i++ {
		if err := m.Apply(t.Context(), evs[i:i+1]); err != nil {
			t.Fatal(err)
		}
	}
	for key, h := range old { // the older snapshot's keys; the checkpoint stays
		if err := c.Del(t.Context(), prefix+key).Err(); err != nil {
			t.Fatal(err)
		}
		if err := c.HSet(t.Context(), prefix+key, h).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Apply(t.Context(), evs[j:]); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, dump(t, c, prefix, false)); diff != "" {
		t.Errorf("memory after Redis lost writes (-want +got):\n%s", diff)
	}
	if rebuilt.Load() == 0 {
		t.Error("no room counted as rebuilt")
	}
}
