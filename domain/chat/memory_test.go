package chat_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleychat/parley/adapters/inmem"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/chat"
	"github.com/parleychat/parley/domain/domaintest"
	"github.com/parleychat/parley/domain/memory"
	"github.com/parleychat/parley/domain/room"
)

// reader is a MemoryReader that returns m and err, or blocks until its
// context ends when block is set; it counts its calls in loads when set.
type reader struct {
	m     *memory.Conversation
	err   error
	block bool
	loads *atomic.Int32
}

func (r reader) Load(ctx context.Context, _ int64, _ string) (*memory.Conversation, error) {
	if r.loads != nil {
		r.loads.Add(1)
	}
	if r.block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return r.m, r.err
}

// compactor is a chat.Memory that counts its calls; each call waits on
// gate when it is set, then decides the summary in next, if any.
type compactor struct {
	mu    sync.Mutex
	calls int
	gate  chan struct{}
	next  *room.SummaryUpdated
}

func (c *compactor) Summarize(ctx context.Context, _ int64) (room.SummaryUpdated, bool, error) {
	c.mu.Lock()
	c.calls++
	c.mu.Unlock()
	if c.gate != nil {
		select {
		case <-c.gate:
		case <-ctx.Done():
			return room.SummaryUpdated{}, false, ctx.Err()
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.next == nil {
		return room.SummaryUpdated{}, false, nil
	}
	ev := *c.next
	c.next = nil
	return ev, true, nil
}

// pending reports whether a summary waits to be decided.
func (c *compactor) pending() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.next != nil
}

func (c *compactor) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

// TestMemoryReaderOutageDoesNotFailAnswers: a read model that fails or
// hangs degrades the prompt to the stream's memory, with a warning.
func TestMemoryReaderOutageDoesNotFailAnswers(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    reader
	}{
		{"refused", reader{err: errors.New("dial tcp 127.0.0.1:1: connect: connection refused")}},
		{"hangs", reader{block: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs domaintest.SyncBuffer
			store := inmem.New(nil)
			g := &gen{tokens: []string{"fine"}}
			svc := startFixture(t, store, chat.Config{MemoryReadTimeout: 20 * time.Millisecond},
				chat.Deps{Generator: g, MemoryReader: tc.r, Logger: slog.New(slog.NewTextHandler(&logs, nil))}).svc
			r, _ := svc.CreateRoom(t.Context(), "42", "t")
			start := time.Now()
			if _, err := svc.Post(t.Context(), r.ID, "42", "first", ""); err != nil {
				t.Fatal(err)
			}
			waitFor(t, store, r.ID, room.TypeAnswerCompleted)
			if _, err := svc.Post(t.Context(), r.ID, "42", "second", ""); err != nil {
				t.Fatal(err)
			}
			waitUntil(t, func() bool { return countType(t, store, r.ID, room.TypeAnswerCompleted) == 2 })
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("two answers took %s with the memory down", d)
			}
			g.mu.Lock()
			hist := g.last.History
			g.mu.Unlock()
			if len(hist) != 2 || hist[0].Content != "first" || hist[1].Content != "fine" {
				t.Errorf("second prompt history = %+v, want the first turn from the stream", hist)
			}
			// Both prompts met the outage within a minute: one warning.
			if n := strings.Count(logs.String(), "memory: read model unavailable"); n != 1 {
				t.Errorf("%d warnings logged, want 1; logs:\n%s", n, logs.String())
			}
		})
	}
}

// TestBadPostReadsNoMemory: a message the room would refuse on its text
// alone is refused before the memory read, so a hanging read model does
// not delay the error.
func TestBadPostReadsNoMemory(t *testing.T) {
	var loads atomic.Int32
	store := inmem.New(nil)
	svc := startFixture(t, store, chat.Config{MemoryReadTimeout: 50 * time.Millisecond},
		chat.Deps{Generator: &gen{tokens: []string{"fine"}}, MemoryReader: reader{block: true, loads: &loads}}).svc
	r, err := svc.CreateRoom(t.Context(), "42", "t")
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"", "   ", "a\x00b", string([]byte{0xff}), strings.Repeat("x", room.MaxMessageBytes+1)} {
		_, err := svc.Post(t.Context(), r.ID, "42", text, "")
		if code := domain.ErrorCode(err); code != domain.EINVALID && code != domain.ETOOLARGE {
			t.Errorf("Post(%.20q) = %v, want an invalid or too-large error", text, err)
		}
	}
	if n := loads.Load(); n != 0 {
		t.Errorf("%d memory reads for refused posts, want 0", n)
	}
	if n := countType(t, store, r.ID, room.TypeMessagePosted); n != 0 {
		t.Errorf("%d messages appended, want 0", n)
	}
}

func TestCompactRunsAfterCompletedAnswersOnly(t *testing.T) {
	store := inmem.New(nil)
	c := &compactor{}
	g := &gen{tokens: []string{"ok"}}
	svc := startFixture(t, store, chat.Config{}, chat.Deps{Generator: g, Memory: c}).svc
	r, _ := svc.CreateRoom(t.Context(), "42", "t")
	svc.Post(t.Context(), r.ID, "42", "q", "")
	waitFor(t, store, r.ID, room.TypeAnswerCompleted)
	waitUntil(t, func() bool { return c.count() == 1 })

	failing := startFixture(t, store, chat.Config{Instance: "b"}, chat.Deps{Generator: &gen{err: errors.New("model crashed")}, Memory: c}).svc
	r2, _ := failing.CreateRoom(t.Context(), "42", "t")
	failing.Post(t.Context(), r2.ID, "42", "q", "")
	waitFor(t, store, r2.ID, room.TypeAnswerFailed)
	time.Sleep(50 * time.Millisecond)
	if n := c.count(); n != 1 {
		t.Errorf("Summarize called %d times, want once: not after a failed answer", n)
	}
}

// TestCompactRunsOnceAtATimePerRoom: answers completing while a Compact
// runs ask for one more run, not one each.
func TestCompactRunsOnceAtATimePerRoom(t *testing.T) {
	store := inmem.New(nil)
	c := &compactor{gate: make(chan struct{})}
	svc := startFixture(t, store, chat.Config{}, chat.Deps{Generator: &gen{tokens: []string{"ok"}}, Memory: c}).svc
	r, _ := svc.CreateRoom(t.Context(), "42", "t")
	for i, q := range []string{"one", "two", "three"} {
		if _, err := svc.Post(t.Context(), r.ID, "42", q, ""); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, func() bool { return countType(t, store, r.ID, room.TypeAnswerCompleted) == i+1 })
	}
	waitUntil(t, func() bool { return c.count() == 1 })
	time.Sleep(20 * time.Millisecond) // the last answer's request follows its append
	c.gate <- struct{}{}              // the first run ends; one more runs for the two answers since
	c.gate <- struct{}{}
	time.Sleep(50 * time.Millisecond)
	if n := c.count(); n != 2 {
		t.Errorf("Summarize ran %d times, want 2", n)
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func countType(t *testing.T, s *inmem.Store, id int64, typ string) int {
	t.Helper()
	n := 0
	for _, ev := range waitFor(t, s, id, room.TypeRoomCreated) {
		if ev.Type == typ {
			n++
		}
	}
	return n
}

// conflictCount is a store that counts the appends refused as conflicts.
type conflictCount struct {
	*inmem.Store
	conflicts atomic.Int32
}

func (s *conflictCount) Append(ctx context.Context, stream string, exp domain.ExpectedVersion, evs ...domain.EventData) (domain.AppendResult, error) {
	res, err := s.Store.Append(ctx, stream, exp, evs...)
	if errors.Is(err, domain.ErrConflict) {
		s.conflicts.Add(1)
	}
	return res, err
}

// TestSummaryIsAppendedByTheStreamingAnswer: a summary decided while the
// room's next answer streams is appended by that answer, between its
// chunks, so neither conflicts with the other.
func TestSummaryIsAppendedByTheStreamingAnswer(t *testing.T) {
	store := &conflictCount{Store: inmem.New(nil)}
	c := &compactor{gate: make(chan struct{})}
	g := &gen{tokens: []string{"a ", "b ", "c"}, gate: make(chan struct{}, 10)}
	// One delta to a chunk: the versions below are exact.
	svc := runService(t, chat.Config{ChunkWindow: -1, MaxChunkBatch: 1}, chat.Deps{Store: store, Generator: g, Memory: c})
	r, _ := svc.CreateRoom(t.Context(), "42", "t") // version 0

	// The first answer (versions 1-6) completes; its summary is decided,
	// held at the gate, while the second answer starts streaming.
	for range 3 {
		g.gate <- struct{}{}
	}
	if _, err := svc.Post(t.Context(), r.ID, "42", "one", ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, store, r.ID, room.TypeAnswerCompleted)
	waitUntil(t, func() bool { return c.count() == 1 })
	if _, err := svc.Post(t.Context(), r.ID, "42", "two", ""); err != nil {
		t.Fatal(err)
	}
	g.gate <- struct{}{} // the second answer's first chunk
	waitUntil(t, func() bool { return countType(t, store.Store, r.ID, room.TypeAnswerChunk) == 4 })
	c.mu.Lock()
	c.next = &room.SummaryUpdated{Summary: "asked one", CoversThroughVersion: 6, Tokens: 2, Summarizer: "test"}
	c.mu.Unlock()
	c.gate <- struct{}{} // the summary is decided, mid-answer
	waitUntil(t, func() bool { return c.count() == 1 && !c.pending() })
	g.gate <- struct{}{} // the next chunk: the summary follows it
	g.gate <- struct{}{}
	waitUntil(t, func() bool { return countType(t, store.Store, r.ID, room.TypeAnswerCompleted) == 2 })
	evs, err := store.ReadStream(t.Context(), room.Stream(r.ID), domain.ReadStreamOptions{From: 7})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range evs {
		got = append(got, ev.Type)
	}
	want := []string{room.TypeMessagePosted, room.TypeAnswerStarted, room.TypeAnswerChunk, room.TypeAnswerChunk, room.TypeSummaryUpdated,
		room.TypeAnswerChunk, room.TypeAnswerCompleted}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("second answer's events %v, want %v", got, want)
	}
	if n := store.conflicts.Load(); n != 0 {
		t.Errorf("%d conflicting appends, want none", n)
	}
}

// TestSummaryIsAppendedOnItsOwnWhenNoAnswerStreams: a summary decided
// after the room's answer ended is appended at the room's version, once;
// one whose turns a summary covers already is not appended.
func TestSummaryIsAppendedOnItsOwnWhenNoAnswerStreams(t *testing.T) {
	store := inmem.New(nil)
	c := &compactor{}
	svc := startFixture(t, store, chat.Config{}, chat.Deps{Generator: &gen{tokens: []string{"ok"}}, Memory: c}).svc
	r, _ := svc.CreateRoom(t.Context(), "42", "t")
	for i, through := range []int64{3, 2} {
		c.mu.Lock()
		c.next = &room.SummaryUpdated{Summary: fmt.Sprintf("summary %d", i), CoversThroughVersion: through, Summarizer: "test"}
		c.mu.Unlock()
		if _, err := svc.Post(t.Context(), r.ID, "42", fmt.Sprintf("q%d", i), ""); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, func() bool { return c.count() == i+1 && !c.pending() })
		time.Sleep(20 * time.Millisecond) // the append follows the decision
	}
	if n := countType(t, store, r.ID, room.TypeSummaryUpdated); n != 1 {
		t.Errorf("%d summaries appended, want 1 (the second covers less than the first)", n)
	}
}
