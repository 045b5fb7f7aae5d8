package chat_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/adapters/inmem"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/chat"
	"github.com/parleychat/parley/domain/room"
)

// paced emits its tokens every gap (none before the first).
type paced struct {
	tokens []string
	gap    time.Duration
}

func (p paced) Name() string { return "test/paced" }

func (p paced) Generate(ctx context.Context, _ chat.Prompt, emit func(string) error) error {
	for i, tok := range p.tokens {
		if i > 0 {
			select {
			case <-time.After(p.gap):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err := emit(tok); err != nil {
			return err
		}
	}
	return nil
}

// chunksOf returns the answer's chunks in order, and its end.
func chunksOf(t *testing.T, evs []domain.RecordedEvent) ([]room.AnswerChunk, room.AnswerCompleted) {
	t.Helper()
	var (
		out  []room.AnswerChunk
		done room.AnswerCompleted
	)
	for _, ev := range evs {
		p, err := room.Decode(ev, true)
		if err != nil {
			t.Fatal(err)
		}
		switch e := p.(type) {
		case room.AnswerChunk:
			out = append(out, e)
		case room.AnswerCompleted:
			done = e
		}
	}
	return out, done
}

// answer posts a question in a new room of svc and returns the room's
// events once the answer has completed.
func answer(t *testing.T, svc *chat.Service, store domain.StreamReader) []domain.RecordedEvent {
	t.Helper()
	r, err := svc.CreateRoom(t.Context(), "42", "Housing")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Post(t.Context(), r.ID, "42", "How much?", ""); err != nil {
		t.Fatal(err)
	}
	return waitFor(t, store, r.ID, room.TypeAnswerCompleted)
}

// TestChunkWindow: deltas a generator emits faster than the window go out
// several to an AnswerChunk, each with its offset; slower ones, or any
// with the window off, one to an event. Every answer's chunks cover its
// deltas once, in order.
func TestChunkWindow(t *testing.T) {
	tokens := strings.Fields("Up to two hundred thousand won a month for twelve months")
	for i := range tokens {
		tokens[i] += " "
	}
	tests := []struct {
		name       string
		gap        time.Duration
		window     time.Duration
		wantCounts []int
	}{
		// The first delta goes alone (nothing before it to tell the pace),
		// then each chunk holds what comes within 10ms of its first.
		{"fast generator", 2 * time.Millisecond, 10 * time.Millisecond, []int{1, 5, 5}},
		{"slower than the window", 15 * time.Millisecond, 10 * time.Millisecond, []int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
		{"window off", 2 * time.Millisecond, -1, []int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				store := inmem.New(nil)
				f := startFixture(t, store, chat.Config{ChunkWindow: tc.window}, chat.Deps{Generator: paced{tokens: tokens, gap: tc.gap}})
				chunks, done := chunksOf(t, answer(t, f.svc, store))
				var counts []int
				seq := 0
				for _, c := range chunks {
					counts = append(counts, c.Count())
					if c.Seq != seq {
						t.Errorf("chunk at seq %d, want %d", c.Seq, seq)
					}
					for i, d := range c.Deltas() {
						if d.Text != tokens[c.Seq+i] {
							t.Errorf("delta %d is %q, want %q", c.Seq+i, d.Text, tokens[c.Seq+i])
						}
						if want := time.Duration(i) * tc.gap; d.At != want.Truncate(time.Millisecond) {
							t.Errorf("delta %d emitted %s after its chunk's first, want %s", c.Seq+i, d.At, want)
						}
					}
					seq += c.Count()
				}
				if diff := cmp.Diff(tc.wantCounts, counts); diff != "" {
					t.Errorf("deltas per chunk (-want +got):\n%s", diff)
				}
				if done.Chunks != len(tokens) || done.Text != strings.Join(tokens, "") {
					t.Errorf("completed with %d chunks, text %q", done.Chunks, done.Text)
				}
				f.shutdown()
			})
		})
	}
}

// gatedStore holds the first append of chunks until released.
type gatedStore struct {
	*inmem.Store
	once    sync.Once
	holding chan struct{} // closed when the first chunk append waits
	release chan struct{}
}

func (s *gatedStore) Append(ctx context.Context, stream string, exp domain.ExpectedVersion, evs ...domain.EventData) (domain.AppendResult, error) {
	if evs[0].Type == room.TypeAnswerChunk {
		s.once.Do(func() {
			close(s.holding)
			<-s.release
		})
	}
	return s.Store.Append(ctx, stream, exp, evs...)
}

// TestDeltasGatherWhileAnAppendIsInFlight: with the window off, the
// deltas that arrive while the previous append is in flight go out in one
// AnswerChunk (group commit within the answer).
func TestDeltasGatherWhileAnAppendIsInFlight(t *testing.T) {
	store := &gatedStore{Store: inmem.New(nil), holding: make(chan struct{}), release: make(chan struct{})}
	g := &gen{tokens: []string{"Up ", "to ", "200,000 ", "won", "."}, gate: make(chan struct{}), sent: make(chan struct{})}
	svc := runService(t, chat.Config{ChunkWindow: -1}, chat.Deps{Store: store, Generator: g})
	r, err := svc.CreateRoom(t.Context(), "42", "Housing")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Post(t.Context(), r.ID, "42", "How much?", ""); err != nil {
		t.Fatal(err)
	}
	g.gate <- struct{}{} // the first delta
	<-store.holding
	for range 4 { // the rest, while the first chunk's append waits
		g.gate <- struct{}{}
	}
	<-g.sent // every delta has reached the pipeline
	close(store.release)
	chunks, end := chunksOf(t, waitFor(t, store, r.ID, room.TypeAnswerCompleted))
	var counts []int
	for _, c := range chunks {
		counts = append(counts, c.Count())
	}
	if diff := cmp.Diff([]int{1, 4}, counts); diff != "" {
		t.Errorf("deltas per chunk (-want +got):\n%s", diff)
	}
	if end.Text != "Up to 200,000 won." || end.Chunks != 5 {
		t.Errorf("completed %+v", end)
	}
}
