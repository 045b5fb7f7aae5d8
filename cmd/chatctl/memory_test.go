package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/adapters/redis"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
	"github.com/parleychat/parley/domain/room/roomgen"
	"github.com/parleychat/parley/projections"
	"github.com/parleychat/parley/projections/projectiontest"
)

// summarise appends a SummaryUpdated to rooms first..first+n-1, as the
// memory worker would.
func (e *pgEnv) summarise(t *testing.T, first int64, n int, text string) {
	t.Helper()
	for id := first; id < first+int64(n); id++ {
		b, err := json.Marshal(room.SummaryUpdated{Summary: fmt.Sprintf("%s of room %d", text, id), CoversThroughVersion: 1, Tokens: 5, Summarizer: "test"})
		if err != nil {
			t.Fatal(err)
		}
		ev := domain.EventData{ID: domain.NameUUID(domain.UUID{9}, fmt.Sprint(text, id)), Type: room.SummaryUpdated{}.EventType(), Data: b}
		if _, err := e.log.Append(t.Context(), room.Stream(id), domain.Any(), ev); err != nil {
			t.Fatal(err)
		}
	}
}

// liveMemory is a Memory following the live generation, as chatd's.
func (e *pgEnv) liveMemory(t *testing.T) *redis.Memory {
	t.Helper()
	m, err := redis.NewMemory(e.rdb, redis.MemoryConfig{Prefix: e.redis, Keys: e.keys})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// startMemoryRunner runs the live memory projection as chatd does.
func (e *pgEnv) startMemoryRunner(t *testing.T) (*projections.Runner, *redis.Memory) {
	t.Helper()
	m := e.liveMemory(t)
	r := &projections.Runner{Store: e.log, Projection: m, MinBackoff: 10 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("memory runner: %v", err)
		}
	})
	return r, m
}

// memDump returns generation gen's memory keys (without the base) and
// values, one per line, sorted, skipping checkpoints.
func (e *pgEnv) memDump(t *testing.T, gen string) []string {
	t.Helper()
	base := e.redis
	if gen != "" {
		base += gen + ":"
	}
	var out []string
	var cursor uint64
	for {
		keys, next, err := e.rdb.Scan(t.Context(), cursor, base+"memory:*", 500).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			rest := strings.TrimPrefix(k, base)
			if strings.HasPrefix(rest, "memory:checkpoint:") {
				continue
			}
			h, err := e.rdb.HGetAll(t.Context(), k).Result()
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(h) // sorted keys
			out = append(out, rest+" "+string(b))
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	sort.Strings(out)
	return out
}

func (e *pgEnv) liveGen(t *testing.T) string {
	t.Helper()
	g, err := e.rdb.Get(t.Context(), e.redis+"live").Result()
	if err != nil && err.Error() != "redis: nil" {
		t.Fatal(err)
	}
	return g
}

func TestMemoryRebuildEqualsTheLiveProjection(t *testing.T) {
	t.Parallel()
	e := newPGEnv(t)
	e.write(t, roomgen.Config{Rooms: 200, Seed: 3})
	e.summarise(t, 1, 50, "first")
	r, mem := e.startMemoryRunner(t)
	e.waitFor(t, r)
	live := e.memDump(t, "")
	if len(live) < 200 {
		t.Fatalf("the live memory holds %d keys, want at least 200", len(live))
	}

	out, errOut, err := e.chatctl(t.Context(), "projections", "rebuild", "memory", "--dry-run")
	if err != nil || !strings.Contains(out, "equals the live read model") {
		t.Fatalf("dry run = %v\n%s\n%s", err, out, errOut)
	}
	// A corrupted live key shows.
	key := e.redis + "memory:" + strings.SplitN(strings.TrimPrefix(live[1], "memory:"), " ", 2)[0]
	if err := e.rdb.HSet(t.Context(), key, "summary", "made up").Err(); err != nil {
		t.Fatal(err)
	}
	out, _, err = e.chatctl(t.Context(), "projections", "rebuild", "memory", "--dry-run")
	if err == nil || !strings.Contains(out, "rooms' memories") || !strings.Contains(err.Error(), "differs") {
		t.Errorf("dry run over a corrupted key = %v\n%s", err, out)
	}
	t.Logf("dry run over a corrupted key:\n%s", out)
	if got := e.memDump(t, "")[1]; !strings.Contains(got, "made up") {
		t.Errorf("the dry run changed the live key: %s", got)
	}

	// The rebuild swaps in a generation without the corruption.
	out, errOut, err = e.chatctl(t.Context(), "projections", "rebuild", "memory")
	if err != nil {
		t.Fatalf("rebuild: %v\n%s\n%s", err, out, errOut)
	}
	t.Logf("rebuild:\n%s", out)
	gen := e.liveGen(t)
	if gen == "" {
		t.Fatal("no live generation after the swap")
	}
	if diff := cmp.Diff(e.memDump(t, gen), live); diff != "" {
		t.Errorf("the new generation (-got +want):\n%s", diff)
	}
	// The running Memory reads the new generation at once.
	id, user := parseRoomKey(t, live[1])
	c, err := mem.Load(t.Context(), id, user)
	if err != nil || c.Summary == "made up" {
		t.Errorf("Load after the swap = %+v, %v; want the rebuilt memory", c, err)
	}
	// It applies new events to the new generation, not to the old.
	oldCP := e.rdb.HGet(t.Context(), e.redis+"memory:checkpoint:memory", "position").Val()
	e.summarise(t, 1, 5, "second")
	e.waitFor(t, r)
	st, err := r.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := e.rdb.HGet(t.Context(), e.redis+gen+":memory:checkpoint:memory", "position").Val(), fmt.Sprintf("%020d/%020d", st.Checkpoint.Commit, st.Checkpoint.Prepare); got != want || got == oldCP {
		t.Errorf("the new generation's checkpoint = %s, want the runner's %s (the old one's is %s)", got, want, oldCP)
	}
	if got := e.rdb.HGet(t.Context(), e.redis+"memory:checkpoint:memory", "position").Val(); got != oldCP {
		t.Errorf("the old generation moved after the swap: %s, was %s", got, oldCP)
	}
	out, _, err = e.chatctl(t.Context(), "projections", "status")
	t.Logf("status:\n%s", out)
	if err != nil || !strings.Contains(out, "memory ("+gen+")") || !strings.Contains(out, "memory_old") {
		t.Errorf("status = %v, want the live memory and its old copy", err)
	}
	if _, _, err := e.chatctl(t.Context(), "projections", "rebuild", "memory"); err == nil || !strings.Contains(err.Error(), "or pass --drop-old") {
		t.Errorf("a rebuild over the old copy = %v, want a refusal naming --drop-old", err)
	}
	if out, _, err := e.chatctl(t.Context(), "projections", "drop-old", "memory"); err != nil || !strings.Contains(out, "dropped") {
		t.Fatalf("drop-old = %q, %v", out, err)
	}
	if got := e.memDump(t, ""); len(got) != 0 {
		t.Errorf("drop-old left %d keys of the old generation, e.g. %s", len(got), got[0])
	}
	if c, err := mem.Load(t.Context(), id, user); err != nil || c.Version < 0 {
		t.Errorf("Load after drop-old = %+v, %v", c, err)
	}
}

func parseRoomKey(t *testing.T, line string) (int64, string) {
	t.Helper()
	var id int64
	var user string
	k := strings.SplitN(line, " ", 2)[0]
	parts := strings.SplitN(strings.TrimPrefix(k, "memory:"), ":", 2)
	if _, err := fmt.Sscan(parts[0], &id); err != nil || len(parts) != 2 {
		t.Fatalf("key %q is not a room's", k)
	}
	user = parts[1]
	return id, user
}

func TestMemoryRebuildUnderALiveRunner(t *testing.T) {
	t.Parallel()
	e := newPGEnv(t)
	e.write(t, roomgen.Config{Rooms: 300, Seed: 4})
	r, _ := e.startMemoryRunner(t)
	// Writers keep appending while the rebuild runs; they stop, and every
	// append they started returns, before the comparison.
	w := projectiontest.StartWriters(t, e.log, 1000, 1000)
	out, errOut, err := e.chatctl(t.Context(), "projections", "rebuild", "all", "--batch", "200", "--drop-old")
	if werr := w.Stop(); werr != nil {
		t.Fatal(werr)
	}
	if err != nil {
		t.Fatalf("rebuild all: %v\n%s\n%s", err, out, errOut)
	}
	t.Logf("rebuild all:\n%s", out)
	if !strings.Contains(out, "chatlog: rebuilt and swapped") || !strings.Contains(out, "memory: rebuilt and swapped") {
		t.Errorf("rebuild all did not rebuild both:\n%s", out)
	}
	head := e.head(t)
	e.waitFor(t, r)
	gen := e.liveGen(t)
	st, _ := r.Status(t.Context())
	cp, _ := e.liveMemory(t).Checkpoint(t.Context())
	t.Logf("head %s, runner %+v, live generation %s at %s", head, st, gen, cp)
	// A fresh generation from the whole log must equal it.
	fresh, err := redis.NewMemory(e.rdb, redis.MemoryConfig{Prefix: e.redis, Generation: "g999", Keys: e.keys})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := projections.CatchUp(t.Context(), projections.CatchUpOptions{Store: e.log, Projection: fresh}, head); err != nil {
		t.Fatal(err)
	}
	got := e.memDump(t, gen)
	if diff := cmp.Diff(got, e.memDump(t, "g999")); diff != "" {
		t.Errorf("the live generation after a rebuild under writers lost something (-live +fresh):\n%s", diff)
	}
	if n := len(e.memDump(t, "")); n != 0 {
		t.Errorf("--drop-old left %d old keys", n)
	}
}
