package redis_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	goredis "github.com/redis/go-redis/v9"

	"github.com/parleychat/parley/adapters/inmem"
	"github.com/parleychat/parley/adapters/redis"
	"github.com/parleychat/parley/adapters/redis/redistest"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/memory"
	"github.com/parleychat/parley/domain/room"
	"github.com/parleychat/parley/projections"
)

// writer appends room events to an in-memory store.
type writer struct {
	t     *testing.T
	store *inmem.Store
	n     int
}

func (w *writer) append(id int64, evs ...room.Event) {
	w.t.Helper()
	stream := room.Stream(id)
	current := domain.NoVersion
	if got, err := w.store.ReadStream(w.t.Context(), stream, domain.ReadStreamOptions{Direction: domain.Backward, From: domain.EndOfStream, Limit: 1}); err == nil {
		current = got[0].Version
	}
	data := make([]domain.EventData, len(evs))
	for i, e := range evs {
		b, err := json.Marshal(e)
		if err != nil {
			w.t.Fatal(err)
		}
		w.n++
		data[i] = domain.EventData{ID: domain.NameUUID(domain.UUID{}, fmt.Sprint(w.n)), Type: e.EventType(), Data: b}
	}
	if _, err := w.store.Append(w.t.Context(), stream, domain.Exact(current), data...); err != nil {
		w.t.Fatal(err)
	}
}

// exchange appends question i of room id and its answer (completed, or
// left open when answer is "").
func (w *writer) exchange(id int64, i int, question, answer string) {
	w.t.Helper()
	q := domain.NameUUID(domain.UUID{1}, fmt.Sprint(id, "q", i))
	a := domain.NameUUID(domain.UUID{1}, fmt.Sprint(id, "a", i))
	w.append(id, room.MessagePosted{MessageID: q, UserID: "u" + fmt.Sprint(id), Text: question}, room.AnswerStarted{AnswerID: a, QuestionID: q})
	if answer != "" {
		w.append(id, room.AnswerChunk{AnswerID: a, Delta: answer}, room.AnswerCompleted{AnswerID: a, Text: answer})
	}
}

// sampleLog is two rooms' conversations, one summarised, one deleted, and
// one with an open answer.
func sampleLog(t *testing.T) *inmem.Store {
	w := &writer{t: t, store: inmem.New(nil)}
	w.append(1, room.RoomCreated{RoomID: 1, OwnerID: "u1", Title: "Housing"})
	w.append(2, room.RoomCreated{RoomID: 2, OwnerID: "u2", Title: "Jobs"})
	w.exchange(1, 1, "How much is the housing allowance?", "Up to 200,000 won a month.") // room 1: 1-4
	w.exchange(2, 1, "Is there job training?", "Yes, free courses.")
	w.exchange(1, 2, "Who can apply?", "Residents aged 19 to 34.") // 5-8
	w.append(1, room.SummaryUpdated{Summary: "Housing allowance: up to 200,000 won.", CoversThroughVersion: 4, Tokens: 8, Summarizer: "test"})
	w.exchange(1, 3, "When is the deadline?", "") // open
	w.append(3, room.RoomCreated{RoomID: 3, OwnerID: "u3", Title: "Gone"})
	w.exchange(3, 1, "q", "a")
	w.append(3, room.RoomDeleted{RoomID: 3, DeletedBy: "u3"})
	w.append(2, room.SummaryUpdated{Summary: "Job training is free.", CoversThroughVersion: 4, Tokens: 4, Summarizer: "test"})
	return w.store
}

func newMemory(t *testing.T, c *goredis.Client, prefix, name string) *redis.Memory {
	t.Helper()
	m, err := redis.NewMemory(c, redis.MemoryConfig{Prefix: prefix, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func readAll(t *testing.T, s *inmem.Store) []domain.RecordedEvent {
	t.Helper()
	evs, err := s.ReadAll(t.Context(), domain.ReadAllOptions{Limit: 100000})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// dump returns every hash under prefix; checkpoints only when withCheckpoints.
func dump(t *testing.T, c *goredis.Client, prefix string, withCheckpoints bool) map[string]map[string]string {
	t.Helper()
	keys, err := c.Keys(t.Context(), strings.NewReplacer("*", `\*`, "?", `\?`, "[", `\[`).Replace(prefix)+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]string{}
	for _, k := range keys {
		if !withCheckpoints && strings.Contains(k, "memory:checkpoint:") {
			continue
		}
		h, err := c.HGetAll(t.Context(), k).Result()
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimPrefix(k, prefix)] = h
	}
	return out
}

func TestApplyFoldsEachRoomIntoItsKey(t *testing.T) {
	c := redistest.Client(t)
	prefix := redistest.Prefix(t, c)
	m := newMemory(t, c, prefix, "")
	evs := readAll(t, sampleLog(t))
	if err := m.Apply(t.Context(), evs); err != nil {
		t.Fatal(err)
	}

	got, err := m.Load(t.Context(), 1, "u1")
	if err != nil {
		t.Fatal(err)
	}
	want := &memory.Conversation{
		Summary: "Housing allowance: up to 200,000 won.", Through: 4, Version: 11,
		Turns: []memory.Turn{
			{Question: "Who can apply?", Answer: "Residents aged 19 to 34.", QuestionVersion: 5, EndVersion: 8},
			{Question: "When is the deadline?", QuestionVersion: 10, EndVersion: 10, Open: true, AnswerID: domain.NameUUID(domain.UUID{1}, "1a3")},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("room 1 (-want +got):\n%s", diff)
	}
	if got, _ := m.Load(t.Context(), 2, "u2"); got.Summary != "Job training is free." || len(got.Turns) != 0 || got.Version != 5 {
		t.Errorf("room 2 = %+v", got)
	}
	if got, _ := m.Load(t.Context(), 3, "u3"); !got.Deleted || len(got.Turns) != 0 || got.Version != 5 {
		t.Errorf("deleted room 3 = %+v", got)
	}
	// Another user's key, and an unknown room, hold nothing.
	for _, k := range []struct {
		room int64
		user string
	}{{1, "u2"}, {9, "u1"}} {
		if got, err := m.Load(t.Context(), k.room, k.user); err != nil || got.Version != domain.NoVersion || len(got.Turns) != 0 {
			t.Errorf("Load(%d, %s) = %+v, %v; want an empty memory", k.room, k.user, got, err)
		}
	}

	raw := dump(t, c, prefix, true)
	if diff := cmp.Diff(map[string]string{"1": "u1", "2": "u2", "3": "u3"}, raw["memory:owners"]); diff != "" {
		t.Errorf("owners (-want +got):\n%s", diff)
	}
	if h := raw["memory:1:u1"]; h["applied_version"] != "11" || h["covers_through_version"] != "4" || h["deleted"] != "0" {
		t.Errorf("room 1 hash = %v", h)
	}
	cp, err := m.Checkpoint(t.Context())
	if err != nil || cp != evs[len(evs)-1].Position {
		t.Errorf("checkpoint = %s, %v; want %s", cp, err, evs[len(evs)-1].Position)
	}
}

// TestReplayedEventsChangeNothing: the Lua script's per-key versions make
// a replay a no-op, whether the checkpoint catches it or not.
func TestReplayedEventsChangeNothing(t *testing.T) {
	c := redistest.Client(t)
	prefix := redistest.Prefix(t, c)
	m := newMemory(t, c, prefix, "")
	evs := readAll(t, sampleLog(t))
	for _, b := range [][]domain.RecordedEvent{evs[:9], evs[9:17], evs[17:]} {
		if err := m.Apply(t.Context(), b); err != nil {
			t.Fatal(err)
		}
	}
	want := dump(t, c, prefix, true)

	// The same batches again, through the checkpoint.
	for _, b := range [][]domain.RecordedEvent{evs, evs[:9], evs[5:20]} {
		if err := m.Apply(t.Context(), b); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff(want, dump(t, c, prefix, true)); diff != "" {
		t.Errorf("replay through the checkpoint changed keys (-before +after):\n%s", diff)
	}

	// Without the checkpoint: a projection of another name shares the keys
	// and starts from zero; so does this one once its checkpoint is gone.
	other := newMemory(t, c, prefix, "other")
	if err := c.Del(t.Context(), prefix+"memory:checkpoint:memory").Err(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*redis.Memory{other, m} {
		for _, b := range [][]domain.RecordedEvent{evs[:3], evs[3:12], evs[12:]} {
			if err := p.Apply(t.Context(), b); err != nil {
				t.Fatal(err)
			}
		}
	}
	after := dump(t, c, prefix, false)
	if diff := cmp.Diff(without(want, "memory:checkpoint:memory"), after); diff != "" {
		t.Errorf("replay from zero changed memory keys (-before +after):\n%s", diff)
	}
	cp, _ := m.Checkpoint(t.Context())
	if cp != evs[len(evs)-1].Position {
		t.Errorf("checkpoint after replay = %s, want %s", cp, evs[len(evs)-1].Position)
	}
}

func without(m map[string]map[string]string, key string) map[string]map[string]string {
	out := map[string]map[string]string{}
	for k, v := range m {
		if k != key {
			out[k] = v
		}
	}
	return out
}

// TestConcurrentAppliersAgree: two processes projecting the same log into
// the same keys end where one would.
func TestConcurrentAppliersAgree(t *testing.T) {
	c := redistest.Client(t)
	store := sampleLog(t)
	w := &writer{t: t, store: store, n: 1000}
	for i := range 30 {
		w.exchange(2, i+10, fmt.Sprintf("question %d", i), fmt.Sprintf("answer %d", i))
	}
	evs := readAll(t, store)

	alone := redistest.Prefix(t, c)
	if err := newMemory(t, c, alone, "").Apply(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	// Each applier, like a Runner, hands over the log in order from the
	// start, in batches of its own size, so their writes interleave. In odd
	// rounds they have names of their own, hence checkpoints of their own,
	// and only the keys' versions keep a slower one from writing over a
	// faster one.
	for round := range 8 {
		shared := redistest.Prefix(t, c)
		var wg sync.WaitGroup
		for p := range 3 {
			name := ""
			if round%2 == 1 {
				name = fmt.Sprint("applier-", p)
			}
			m := newMemory(t, c, shared, name)
			size := 2 + 3*p
			wg.Go(func() {
				for i := 0; i < len(evs); i += size {
					// Retry as a Runner would: another writer may keep
					// moving the same keys.
					for attempt := 1; ; attempt++ {
						err := m.Apply(t.Context(), evs[i:min(i+size, len(evs))])
						if err == nil {
							break
						}
						var ee *projections.EventError
						if errors.As(err, &ee) || attempt == 20 {
							t.Errorf("round %d applier %d: %v", round, p, err)
							return
						}
					}
				}
			})
		}
		wg.Wait()
		if diff := cmp.Diff(dump(t, c, alone, false), dump(t, c, shared, false)); diff != "" {
			t.Fatalf("round %d: concurrent appliers differ from one (-one +three):\n%s", round, diff)
		}
	}
}

func TestApplyRejectsWhatItCannotApply(t *testing.T) {
	c := redistest.Client(t)
	m := newMemory(t, c, redistest.Prefix(t, c), "")
	bad := domain.RecordedEvent{Type: room.TypeMessagePosted, Data: []byte(`{"text": 5}`), Stream: room.Stream(4), Version: 1, Position: domain.Position{Commit: 1, Prepare: 1}}
	var ee *projections.EventError
	if err := m.Apply(t.Context(), []domain.RecordedEvent{bad}); !errors.As(err, &ee) || ee.Version != 1 {
		t.Errorf("undecodable event: %v, want an EventError", err)
	}
	orphan := domain.RecordedEvent{Type: room.TypeAnswerFailed, Data: []byte(`{"answer_id":"00000000-0000-0000-0000-000000000001","reason":"timeout"}`),
		Stream: room.Stream(4), Version: 3, Position: domain.Position{Commit: 2, Prepare: 2}}
	if err := m.Apply(t.Context(), []domain.RecordedEvent{orphan}); !errors.As(err, &ee) || !strings.Contains(err.Error(), "no known owner") {
		t.Errorf("event of a room without owner: %v, want an EventError", err)
	}
	if cp, _ := m.Checkpoint(t.Context()); !cp.IsZero() {
		t.Errorf("checkpoint moved to %s after failures", cp)
	}
	if err := m.RecordError(t.Context(), "stuck"); err != nil {
		t.Fatal(err)
	}
	if got, _ := m.LastError(t.Context()); got != "stuck" {
		t.Errorf("LastError = %q", got)
	}
	// Events of other streams only move the checkpoint, and a success
	// clears the error.
	other := domain.RecordedEvent{Type: "Other", Data: []byte(`{}`), Stream: "ticket-1", Version: 0, Position: domain.Position{Commit: 3, Prepare: 3}}
	if err := m.Apply(t.Context(), []domain.RecordedEvent{other}); err != nil {
		t.Fatal(err)
	}
	if cp, _ := m.Checkpoint(t.Context()); cp != other.Position {
		t.Errorf("checkpoint %s, want %s", cp, other.Position)
	}
	if got, _ := m.LastError(t.Context()); got != "" {
		t.Errorf("LastError after a success = %q", got)
	}

	// A malformed event of a type the memory folds is rejected by the
	// fold even when nothing else decodes it (here, the owner is known
	// from the RoomCreated); a malformed chunk is not read, so not
	// rejected.
	created, err := json.Marshal(room.RoomCreated{RoomID: 5, OwnerID: "u5", Title: "t"})
	if err != nil {
		t.Fatal(err)
	}
	ev := func(typ, data string, v int64) domain.RecordedEvent {
		return domain.RecordedEvent{Type: typ, Data: []byte(data), Stream: room.Stream(5), Version: v, Position: domain.Position{Commit: uint64(10 + v), Prepare: uint64(10 + v)}}
	}
	badEnd := []domain.RecordedEvent{ev(room.TypeRoomCreated, string(created), 0), ev(room.TypeAnswerChunk, `not json`, 1), ev(room.TypeAnswerCompleted, `{"text": 5}`, 2)}
	if err := m.Apply(t.Context(), badEnd); !errors.As(err, &ee) || ee.Version != 2 || ee.Type != room.TypeAnswerCompleted {
		t.Errorf("malformed AnswerCompleted: %v, want an EventError at version 2", err)
	}
	if cp, _ := m.Checkpoint(t.Context()); cp != other.Position {
		t.Errorf("checkpoint moved to %s after a failure", cp)
	}
	if err := m.Apply(t.Context(), badEnd[:2]); err != nil {
		t.Errorf("malformed AnswerChunk: %v, want it skipped undecoded", err)
	}
	if cp, _ := m.Checkpoint(t.Context()); cp != badEnd[1].Position {
		t.Errorf("checkpoint %s after the batch, want %s", cp, badEnd[1].Position)
	}
	// Chunks are not folded at all: the room's memory is as its
	// RoomCreated left it.
	if c, err := m.Load(t.Context(), 5, "u5"); err != nil || c.Version != 0 {
		t.Errorf("after a malformed chunk: %+v, %v; want version 0", c, err)
	}
}

func TestNewMemoryAndClient(t *testing.T) {
	if _, err := redis.NewMemory(nil, redis.MemoryConfig{}); err == nil {
		t.Error("NewMemory(nil) succeeded")
	}
	c := redistest.Client(t)
	if _, err := redis.NewMemory(c, redis.MemoryConfig{Prefix: "has space:"}); err == nil || !strings.Contains(err.Error(), "Prefix") {
		t.Errorf("NewMemory with a spaced prefix = %v", err)
	}
	m := newMemory(t, c, "", "")
	if m.Prefix() != redis.DefaultPrefix || m.Name() != redis.DefaultMemoryName {
		t.Errorf("defaults %q %q", m.Prefix(), m.Name())
	}
	for _, u := range []string{"", "http://x", "redis://user:s3cret@[::1"} {
		_, err := redis.NewClient(u)
		if err == nil || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("NewClient(%q) = %v; want an error without the password", u, err)
		}
	}
}

func TestClearDeletesOnlyItsPrefix(t *testing.T) {
	c := redistest.Client(t)
	prefix := redistest.Prefix(t, c)
	m := newMemory(t, c, prefix+"a*:", "")
	keep := newMemory(t, c, prefix+"ab:", "")
	evs := readAll(t, sampleLog(t))
	for _, p := range []*redis.Memory{m, keep} {
		if err := p.Apply(t.Context(), evs); err != nil {
			t.Fatal(err)
		}
	}
	n, err := m.Clear(t.Context())
	if err != nil || n != 5 { // three rooms, owners, checkpoint
		t.Errorf("Clear = %d, %v; want 5 keys", n, err)
	}
	if got := len(dump(t, c, prefix+"a*:", true)); got != 0 {
		t.Errorf("%d keys left", got)
	}
	if got := len(dump(t, c, prefix+"ab:", true)); got != 5 {
		t.Errorf("the other prefix has %d keys, want 5", got)
	}
}
