package memory_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/adapters/inmem"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/memory"
	"github.com/parleychat/parley/domain/room"
)

// joiner is a Summarizer that joins the previous summary and the
// questions; before summarising it calls hook, if set.
type joiner struct {
	mu    sync.Mutex
	calls int
	hook  func(ctx context.Context, call int) error
}

func (j *joiner) Name() string { return "test/joiner" }

func (j *joiner) Summarize(ctx context.Context, previous string, turns []memory.Turn) (string, error) {
	j.mu.Lock()
	j.calls++
	call := j.calls
	j.mu.Unlock()
	if j.hook != nil {
		if err := j.hook(ctx, call); err != nil {
			return "", err
		}
	}
	parts := []string{}
	if previous != "" {
		parts = append(parts, previous)
	}
	for _, t := range turns {
		parts = append(parts, t.Question)
	}
	return strings.Join(parts, " | "), nil
}

// appendEvents appends room events to room 7 at its current version.
func appendEvents(t *testing.T, s *inmem.Store, evs ...room.Event) {
	t.Helper()
	current := domain.NoVersion
	if got, err := s.ReadStream(t.Context(), room.Stream(7), domain.ReadStreamOptions{Direction: domain.Backward, From: domain.EndOfStream, Limit: 1}); err == nil {
		current = got[0].Version
	}
	data := make([]domain.EventData, len(evs))
	for i, e := range evs {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		data[i] = domain.EventData{ID: domain.NameUUID(uuid(0), fmt.Sprint(current, i)), Type: e.EventType(), Data: b}
	}
	if _, err := s.Append(t.Context(), room.Stream(7), domain.Exact(current), data...); err != nil {
		t.Fatal(err)
	}
}

// summaries returns the room's SummaryUpdated events.
func summaries(t *testing.T, s *inmem.Store) []room.SummaryUpdated {
	t.Helper()
	evs, err := s.ReadStream(t.Context(), room.Stream(7), domain.ReadStreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []room.SummaryUpdated
	for _, ev := range evs {
		if ev.Type == room.TypeSummaryUpdated {
			p, err := room.Decode(ev, false)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, p.(room.SummaryUpdated))
		}
	}
	return out
}

// readCounter counts the ReadStream calls made to a store.
type readCounter struct {
	*inmem.Store
	reads int
}

func (r *readCounter) ReadStream(ctx context.Context, stream string, opts domain.ReadStreamOptions) ([]domain.RecordedEvent, error) {
	r.reads++
	return r.Store.ReadStream(ctx, stream, opts)
}

func newWorker(t *testing.T, s memory.Store, sum memory.Summarizer, limit int) *memory.Worker {
	t.Helper()
	w, err := memory.NewWorker(memory.Config{MaxTokenLimit: limit}, memory.Deps{Store: s, Summarizer: sum, Counter: words{}, Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// fourTurns is a room with four exchanges of 4 words each (2+2): versions
// 1-4, 5-8, 9-12, 13-16.
func fourTurns(t *testing.T) *inmem.Store {
	s := inmem.New(nil)
	appendEvents(t, s, created)
	for i := range byte(4) {
		evs := turn(i+1, fmt.Sprintf("question %d", i+1), fmt.Sprintf("answer %d", i+1))
		appendEvents(t, s, evs[:2]...)
		appendEvents(t, s, evs[2:]...)
	}
	return s
}

func TestCompactFoldsTheOldestTurnsUntilTheBufferFits(t *testing.T) {
	s := fourTurns(t)
	j := &joiner{}
	rc := &readCounter{Store: s}
	w := newWorker(t, rc, j, 9) // 16 tokens in the buffer: two turns must go
	if err := w.Compact(t.Context(), 7); err != nil {
		t.Fatal(err)
	}
	if rc.reads != 2 {
		t.Errorf("Compact read the stream %d times, want twice (its last event, then what the memory folds): a summary appended at the version read ends it", rc.reads)
	}
	want := []room.SummaryUpdated{{Summary: "question 1 | question 2", CoversThroughVersion: 8, Tokens: 5, Summarizer: "test/joiner"}}
	if diff := cmp.Diff(want, summaries(t, s)); diff != "" {
		t.Errorf("summaries (-want +got):\n%s", diff)
	}
	c, err := w.Load(t.Context(), 7)
	if err != nil {
		t.Fatal(err)
	}
	if c.Summary != want[0].Summary || c.Through != 8 || len(c.Turns) != 2 || c.Turns[0].Question != "question 3" || c.Version != 17 {
		t.Errorf("memory after compacting = %+v", c)
	}

	// Under the limit now: nothing more to do.
	if err := w.Compact(t.Context(), 7); err != nil {
		t.Fatal(err)
	}
	if n := len(summaries(t, s)); n != 1 || j.calls != 1 {
		t.Errorf("second Compact wrote %d summaries in %d calls; want 1 in 1", n, j.calls)
	}

	// Two more turns: the next summary folds the previous one in.
	for i := range byte(2) {
		appendEvents(t, s, turn(i+5, fmt.Sprintf("question %d", i+5), fmt.Sprintf("answer %d", i+5))...)
	}
	if err := w.Compact(t.Context(), 7); err != nil {
		t.Fatal(err)
	}
	got := summaries(t, s)
	if len(got) != 2 || got[1].Summary != "question 1 | question 2 | question 3 | question 4" || got[1].CoversThroughVersion != 16 {
		t.Errorf("second summary = %+v", got[len(got)-1])
	}
}

func TestCompactDoesNothingForMissingOrDeletedRooms(t *testing.T) {
	j := &joiner{}
	s := inmem.New(nil)
	if err := newWorker(t, s, j, 1).Compact(t.Context(), 7); err != nil {
		t.Errorf("Compact of a missing room = %v", err)
	}
	s = fourTurns(t)
	appendEvents(t, s, room.RoomDeleted{RoomID: 7})
	if err := newWorker(t, s, j, 1).Compact(t.Context(), 7); err != nil {
		t.Errorf("Compact of a deleted room = %v", err)
	}
	if j.calls != 0 || len(summaries(t, s)) != 0 {
		t.Errorf("summarised %d times", j.calls)
	}
}

func TestCompactReportsSummarizerErrors(t *testing.T) {
	s := fourTurns(t)
	boom := errors.New("model down")
	w := newWorker(t, s, &joiner{hook: func(context.Context, int) error { return boom }}, 9)
	err := w.Compact(t.Context(), 7)
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "room 7: summarise 2 turns with test/joiner") {
		t.Errorf("Compact = %v, want the summariser's error with context", err)
	}
	if n := len(summaries(t, s)); n != 0 {
		t.Errorf("%d summaries written after a failure", n)
	}
}

func TestCompactAppendsAfterEventsThatArrivedMeanwhile(t *testing.T) {
	s := fourTurns(t)
	// While the summary is being written, the user asks the next question.
	j := &joiner{hook: func(ctx context.Context, call int) error {
		if call == 1 {
			appendEvents(t, s, turn(5, "question 5", "")[:2]...)
		}
		return nil
	}}
	rc := &readCounter{Store: s}
	w := newWorker(t, rc, j, 9)
	if err := w.Compact(t.Context(), 7); err != nil {
		t.Fatal(err)
	}
	got := summaries(t, s)
	if len(got) != 1 || got[0].CoversThroughVersion != 8 || j.calls != 1 {
		t.Fatalf("summaries %+v after %d calls; want one through 8", got, j.calls)
	}
	if rc.reads != 3 {
		t.Errorf("Compact read the stream %d times, want 3: the room (its last event, then what the memory folds), and what came after the conflict", rc.reads)
	}
	c, _ := w.Load(t.Context(), 7)
	if len(c.Turns) != 3 || !c.Turns[2].Open || c.Turns[2].Question != "question 5" {
		t.Errorf("buffer after the append = %+v", c.Turns)
	}
	// The open question's answer completes after the summary: the fold
	// still pairs them.
	q5 := turn(5, "question 5", "answer 5")
	appendEvents(t, s, q5[2:]...)
	c, _ = w.Load(t.Context(), 7)
	if last := c.Turns[len(c.Turns)-1]; last.Open || last.Answer != "answer 5" {
		t.Errorf("last turn = %+v", last)
	}
}

// TestConcurrentCompactsSummariseEachTurnOnce runs several workers (as if
// in several processes) on one room, all reading it before any appends.
func TestConcurrentCompactsSummariseEachTurnOnce(t *testing.T) {
	for _, workers := range []int{2, 5} {
		t.Run(fmt.Sprint(workers), func(t *testing.T) {
			s := fourTurns(t)
			var arrived sync.WaitGroup
			arrived.Add(workers)
			release := make(chan struct{})
			var once sync.Once
			hook := func(ctx context.Context, call int) error {
				if call == 1 {
					arrived.Done()
					select {
					case <-release:
					case <-ctx.Done():
						return ctx.Err()
					}
				}
				return nil
			}
			var wg sync.WaitGroup
			errs := make(chan error, workers)
			for range workers {
				w := newWorker(t, s, &joiner{hook: hook}, 5)
				wg.Go(func() { errs <- w.Compact(t.Context(), 7) })
			}
			go func() { arrived.Wait(); once.Do(func() { close(release) }) }()
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Error(err)
				}
			}
			seen := map[int64]int{}
			for _, su := range summaries(t, s) {
				seen[su.CoversThroughVersion]++
			}
			for v, n := range seen {
				if n != 1 {
					t.Errorf("%d summaries cover through version %d, want 1", n, v)
				}
			}
			c, err := newWorker(t, s, &joiner{}, 5).Load(t.Context(), 7)
			if err != nil {
				t.Fatal(err)
			}
			if got := memory.Plan(c.Turns, words{}, 5); got != 0 || c.Through != 12 {
				t.Errorf("after the race the summary covers through %d and %d turns are still over the limit", c.Through, got)
			}
		})
	}
}

func TestLoadPagesBackToTheLastSummary(t *testing.T) {
	s := inmem.New(nil)
	appendEvents(t, s, created)
	appendEvents(t, s, turn(1, "question 1", "answer 1")...)
	appendEvents(t, s, room.SummaryUpdated{Summary: "s1", CoversThroughVersion: 4})
	// A long answer: 1200 chunks, more than two pages.
	q, a := uuid(20), uuid(21)
	appendEvents(t, s, room.MessagePosted{MessageID: q, UserID: "42", Text: "long?"}, room.AnswerStarted{AnswerID: a, QuestionID: q})
	for i := range 1200 {
		appendEvents(t, s, room.AnswerChunk{AnswerID: a, Seq: i, Delta: "x"})
	}
	appendEvents(t, s, room.AnswerCompleted{AnswerID: a, Text: "long answer"})
	w := newWorker(t, s, &joiner{}, 100)
	c, err := w.Load(t.Context(), 7)
	if err != nil {
		t.Fatal(err)
	}
	want := &memory.Conversation{Summary: "s1", Through: 4, Version: 1208,
		Turns: []memory.Turn{{Question: "long?", Answer: "long answer", QuestionVersion: 6, EndVersion: 1208}}}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("loaded (-want +got):\n%s", diff)
	}
}

// chunkCounter counts the answer chunks a store's reads return, and its
// reads.
type chunkCounter struct {
	*inmem.Store
	reads, chunks int
}

func (r *chunkCounter) ReadStream(ctx context.Context, stream string, opts domain.ReadStreamOptions) ([]domain.RecordedEvent, error) {
	evs, err := r.Store.ReadStream(ctx, stream, opts)
	r.reads++
	for _, ev := range evs {
		if ev.Type == room.TypeAnswerChunk {
			r.chunks++
		}
	}
	return evs, err
}

// TestLoadReadsOnlyWhatTheMemoryFolds loads a room whose answers stream
// many chunks, the last of them still streaming (the stream ends with a
// chunk): the memory is the fold of every event, its version the last
// event's (Compact appends there), and no chunk is read but that last
// event.
func TestLoadReadsOnlyWhatTheMemoryFolds(t *testing.T) {
	s := inmem.New(nil)
	appendEvents(t, s, created)
	for i := range byte(3) {
		evs := turn(i+1, fmt.Sprintf("question %d", i+1), fmt.Sprintf("answer %d", i+1))
		chunks := slices.Repeat(evs[2:3], 40) // the answer in 40 chunks
		appendEvents(t, s, concat(evs[:2], chunks, evs[3:])...)
	}
	q, a := uuid(20), uuid(21)
	appendEvents(t, s, room.MessagePosted{MessageID: q, UserID: "42", Text: "question 4"}, room.AnswerStarted{AnswerID: a, QuestionID: q})
	for i := range 30 {
		appendEvents(t, s, room.AnswerChunk{AnswerID: a, Seq: i, Delta: "y"})
	}
	all, err := s.ReadStream(t.Context(), room.Stream(7), domain.ReadStreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := memory.NewConversation()
	for _, ev := range all {
		if err := want.Apply(ev); err != nil {
			t.Fatal(err)
		}
	}
	if want.Version != int64(len(all)-1) || len(want.Turns) != 4 {
		t.Fatalf("the fold of every event is %+v", want)
	}

	rc := &chunkCounter{Store: s}
	got, err := newWorker(t, rc, &joiner{}, 1000).Load(t.Context(), 7)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Load (-fold of every event +got):\n%s", diff)
	}
	if rc.chunks > 1 {
		t.Errorf("Load read %d answer chunks in %d reads, want at most the last event", rc.chunks, rc.reads)
	}

	// Compacting appends at that version the first time: no conflict, no
	// reading again.
	rc.reads = 0
	if err := newWorker(t, rc, &joiner{}, 5).Compact(t.Context(), 7); err != nil {
		t.Fatal(err)
	}
	if got := summaries(t, s); len(got) != 1 || rc.reads != 2 {
		t.Errorf("Compact wrote %d summaries in %d reads, want 1 in 2 (the room's last event, what the memory folds)", len(got), rc.reads)
	}
}

func TestNewWorkerNamesEveryProblem(t *testing.T) {
	_, err := memory.NewWorker(memory.Config{MaxTokenLimit: -1}, memory.Deps{})
	for _, want := range []string{"MaxTokenLimit -1 is negative", "a Store is required", "a Summarizer is required", "a TokenCounter is required", "a clock (Now) is required"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("NewWorker error %v does not say %q", err, want)
		}
	}
}
