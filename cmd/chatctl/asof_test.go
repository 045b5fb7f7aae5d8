package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/adapters/postgres/pgtest"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/chat"
	"github.com/parleychat/parley/domain/room"
)

// questionGen answers by the question: "ok N" streams N deltas and
// completes, "fail N" streams N and fails, "block N" streams N and waits to
// be cancelled.
type questionGen struct{}

func (questionGen) Name() string { return "test/question" }

func (questionGen) Generate(ctx context.Context, p chat.Prompt, emit func(string) error) error {
	mode, count, _ := strings.Cut(p.Question, " ")
	n, _ := strconv.Atoi(count)
	for i := range n {
		if err := emit(fmt.Sprintf("w%d é ", i)); err != nil {
			return err
		}
	}
	switch mode {
	case "fail":
		return errors.New("the model crashed")
	case "block":
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

// waitForType polls room id's stream until it holds n events of type typ.
func waitForType(t *testing.T, s domain.StreamReader, id int64, typ string, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		evs, err := s.ReadStream(t.Context(), room.Stream(id), domain.ReadStreamOptions{})
		if err != nil {
			t.Fatal(err)
		}
		c := 0
		for _, ev := range evs {
			if ev.Type == typ {
				c++
			}
		}
		if c >= n {
			return
		}
	}
	t.Fatalf("room %d never had %d %s events", id, n, typ)
}

// runConversation has the chat service run a conversation in a new room
// of user 42: a completed answer, a failed one, an audit, a cancelled one.
func runConversation(t *testing.T, store *postgres.Store) int64 {
	t.Helper()
	// One delta to a chunk, so the chunks can be counted below.
	svc := chat.NewService(chat.Config{ShutdownGrace: 50 * time.Millisecond, MaxChunkBatch: 1}, chat.Deps{Store: store, Generator: questionGen{}, Now: time.Now, Random: rand.Reader})
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	defer func() { stop(); <-done }()
	r, err := svc.CreateRoom(t.Context(), "42", "Jobs")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Post(t.Context(), r.ID, "42", "ok 5", "c-1"); err != nil {
		t.Fatal(err)
	}
	waitForType(t, store, r.ID, room.TypeAnswerCompleted, 1)
	if _, err := svc.Post(t.Context(), r.ID, "42", "fail 2", ""); err != nil {
		t.Fatal(err)
	}
	waitForType(t, store, r.ID, room.TypeAnswerFailed, 1)
	if _, err := svc.Audit(t.Context(), r.ID, "auditor-9", room.InterfaceREST); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Post(t.Context(), r.ID, "42", "block 3", ""); err != nil {
		t.Fatal(err)
	}
	waitForType(t, store, r.ID, room.TypeAnswerChunk, 5+2+3)
	if err := svc.Cancel(t.Context(), r.ID, "42"); err != nil {
		t.Fatal(err)
	}
	waitForType(t, store, r.ID, room.TypeAnswerCancelled, 1)
	return r.ID
}

// TestAsOfMatchesTheChatLogAtEveryVersion runs conversations into a fresh
// Postgres database, then feeds their events one by one to a ChatLog
// projection and, after each, checks that `chatctl replay --as-of` at that
// version (and at that event's time, when it is the last event of its
// time) prints exactly the messages the ChatLog holds then.
func TestAsOfMatchesTheChatLogAtEveryVersion(t *testing.T) {
	url := pgtest.NewDatabase(t)
	pool, err := pgxpool.New(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	store := postgres.NewStore(pool, postgres.StoreConfig{})
	t.Cleanup(func() { store.Close() })
	writeConversation(t, store, nil, fixedRoom)
	served := runConversation(t, store)

	// Both rooms' events in global order. (ReadAll would do, but it holds
	// back events while any transaction on the shared server is older.)
	var evs []domain.RecordedEvent
	for _, id := range []int64{fixedRoom, served} {
		page, err := store.ReadStream(t.Context(), room.Stream(id), domain.ReadStreamOptions{})
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, page...)
	}
	slices.SortFunc(evs, func(a, b domain.RecordedEvent) int {
		if a.Position.Less(b.Position) {
			return -1
		}
		return 1
	})
	cl, err := postgres.NewChatLog(pool, postgres.ChatLogConfig{})
	if err != nil {
		t.Fatal(err)
	}
	getenv := env(map[string]string{"PARLEY_DATABASE_URL": url, "PARLEY_OPERATOR": "asof-test"})
	replayAsOf := func(id int64, at string) []messageJSON {
		t.Helper()
		var out, stderr bytes.Buffer
		args := []string{"replay", "--room", strconv.FormatInt(id, 10), "--as-of", at, "--format", "jsonl"}
		if err := run(t.Context(), args, getenv, nil, &out, &stderr); err != nil {
			t.Fatalf("chatctl %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		msgs := []messageJSON{}
		for line := range strings.Lines(out.String()) {
			var m messageJSON
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("line %q: %v", line, err)
			}
			msgs = append(msgs, m)
		}
		return msgs
	}
	// projected is the room as readers of the ChatLog see it after the
	// first upTo events: its rows, then the stream's events after the
	// version they reflect (an open answer's chunks).
	projected := func(id int64, upTo int) []messageJSON {
		t.Helper()
		msgs, version, err := cl.History(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		h := room.NewHistory()
		h.Load(msgs, version)
		for _, ev := range evs[:upTo] {
			if rid, _ := room.ParseStream(ev.Stream); rid == id {
				if err := h.Apply(ev); err != nil {
					t.Fatal(err)
				}
			}
		}
		out := []messageJSON{}
		for _, m := range h.Messages {
			out = append(out, messageLine(m))
		}
		return out
	}

	checked := map[int64]int{}
	for i, ev := range evs {
		if err := cl.Apply(t.Context(), []domain.RecordedEvent{ev}); err != nil {
			t.Fatalf("ChatLog.Apply %s@%d: %v", ev.Stream, ev.Version, err)
		}
		id, _ := room.ParseStream(ev.Stream)
		want := projected(id, i+1)
		if diff := cmp.Diff(want, replayAsOf(id, strconv.FormatInt(ev.Version, 10))); diff != "" {
			t.Errorf("room %d as of version %d differs from the ChatLog stopped there (-chatlog +replay):\n%s", id, ev.Version, diff)
		}
		lastOfItsTime := true
		for _, later := range evs[i+1:] {
			if later.Stream == ev.Stream {
				lastOfItsTime = later.RecordedAt.After(ev.RecordedAt)
				break
			}
		}
		if lastOfItsTime {
			at := ev.RecordedAt.Format(time.RFC3339Nano)
			if diff := cmp.Diff(want, replayAsOf(id, at)); diff != "" {
				t.Errorf("room %d as of %s (version %d) differs from the ChatLog stopped there (-chatlog +replay):\n%s", id, at, ev.Version, diff)
			}
		}
		checked[id]++
	}
	if checked[fixedRoom] != conversationEvents() || checked[served] < 15 {
		t.Errorf("checked %v versions; want %d of room %d and at least 15 of room %d", checked, conversationEvents(), fixedRoom, served)
	}
}
