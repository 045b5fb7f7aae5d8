package chat_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/adapters/inmem"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/chat"
	"github.com/parleychat/parley/domain/room"
)

// gen is a hand-written generator: it emits its tokens, waiting on gate
// (when set) before each one, closes sent (when set), then returns err.
type gen struct {
	tokens []string
	gate   chan struct{}
	sent   chan struct{}
	err    error
	calls  int
	mu     sync.Mutex
	last   chat.Prompt
}

func (g *gen) Name() string { return "test/gen" }

func (g *gen) Generate(ctx context.Context, p chat.Prompt, emit func(string) error) error {
	g.mu.Lock()
	g.calls++
	g.last = p
	g.mu.Unlock()
	for _, tok := range g.tokens {
		if g.gate != nil {
			select {
			case <-g.gate:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err := emit(tok); err != nil {
			return err
		}
	}
	if g.sent != nil {
		close(g.sent)
	}
	return g.err
}

type fixture struct {
	store *inmem.Store
	svc   *chat.Service
	stop  context.CancelFunc
	done  chan error
}

// newFixture runs a Service of instance over store (a new in-memory one
// when nil) answering with g.
func newFixture(t *testing.T, store *inmem.Store, g chat.Generator, instance string) *fixture {
	t.Helper()
	return startFixture(t, store, chat.Config{Instance: instance}, chat.Deps{Generator: g})
}

// startFixture runs a Service over store (a new in-memory one when nil)
// configured by cfg and deps, with the real clock, crypto/rand and a short
// ShutdownGrace, until the test ends or the fixture is shut down.
func startFixture(t *testing.T, store *inmem.Store, cfg chat.Config, deps chat.Deps) *fixture {
	t.Helper()
	if store == nil {
		store = inmem.New(nil)
	}
	cfg.ShutdownGrace = 50 * time.Millisecond
	deps.Store, deps.Now, deps.Random = store, time.Now, rand.Reader
	svc := chat.NewService(cfg, deps)
	ctx, stop := context.WithCancel(context.Background())
	f := &fixture{store: store, svc: svc, stop: stop, done: make(chan error, 1)}
	go func() { f.done <- svc.Run(ctx) }()
	t.Cleanup(f.shutdown)
	return f
}

// runService runs a Service over deps.Store (any store: a test's wrapper,
// say) with the real clock, crypto/rand and a short ShutdownGrace, until
// the test ends.
func runService(t *testing.T, cfg chat.Config, deps chat.Deps) *chat.Service {
	t.Helper()
	cfg.ShutdownGrace = 50 * time.Millisecond
	deps.Now, deps.Random = time.Now, rand.Reader
	svc := chat.NewService(cfg, deps)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() { stop(); <-done })
	return svc
}

func (f *fixture) shutdown() {
	if f.stop != nil {
		f.stop()
		<-f.done
		f.stop = nil
	}
}

// events returns the room's event types and the answer text once the
// stream holds an event of type until.
func waitFor(t *testing.T, s domain.StreamReader, id int64, until string) []domain.RecordedEvent {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		evs, err := s.ReadStream(t.Context(), room.Stream(id), domain.ReadStreamOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			if ev.Type == until {
				return evs
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("room %d never got %s", id, until)
	return nil
}

func types(evs []domain.RecordedEvent) []string {
	var out []string
	seen := map[string]bool{}
	for _, ev := range evs {
		if ev.Type == room.TypeAnswerChunk && seen[ev.Type] {
			continue // chunks batch differently run to run
		}
		seen[ev.Type] = true
		out = append(out, ev.Type)
	}
	return out
}

func TestPostStreamsAnAnswer(t *testing.T) {
	g := &gen{tokens: []string{"Up ", "to ", "200,000 ", "won."}}
	f := newFixture(t, nil, g, "a")
	r, err := f.svc.CreateRoom(t.Context(), "42", "Housing")
	if err != nil {
		t.Fatal(err)
	}
	if r.ID <= 0 || r.ID >= 1<<53 || r.Owner != "42" || r.Version != 0 {
		t.Fatalf("created room %+v", r)
	}
	res, err := f.svc.Post(t.Context(), r.ID, "42", "How much is the housing allowance?", "")
	if err != nil {
		t.Fatal(err)
	}
	evs := waitFor(t, f.store, r.ID, room.TypeAnswerCompleted)
	want := []string{room.TypeRoomCreated, room.TypeMessagePosted, room.TypeAnswerStarted, room.TypeAnswerChunk, room.TypeAnswerCompleted}
	if diff := cmp.Diff(want, types(evs)); diff != "" {
		t.Errorf("event types (-want +got):\n%s", diff)
	}
	var chunks []string
	deltas := 0
	for _, ev := range evs {
		if ev.Type == room.TypeAnswerChunk {
			var c room.AnswerChunk
			_ = json.Unmarshal(ev.Data, &c)
			if c.Seq != deltas || c.AnswerID != res.AnswerID {
				t.Errorf("chunk seq %d answer %s, want seq %d answer %s", c.Seq, c.AnswerID, deltas, res.AnswerID)
			}
			chunks = append(chunks, c.Delta)
			deltas += c.Count()
		}
	}
	var done room.AnswerCompleted
	_ = json.Unmarshal(evs[len(evs)-1].Data, &done)
	if done.Text != "Up to 200,000 won." || strings.Join(chunks, "") != done.Text || done.Chunks != 4 {
		t.Errorf("completed %+v from chunks %q", done, chunks)
	}
	// The next question sees the first turn in its prompt.
	if _, err := f.svc.Post(t.Context(), r.ID, "42", "And for students?", ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, f.store, r.ID, room.TypeMessagePosted)
	deadline := time.Now().Add(5 * time.Second)
	for {
		g.mu.Lock()
		calls, last := g.calls, g.last
		g.mu.Unlock()
		if calls == 2 {
			wantHist := []chat.Turn{{Role: "user", Content: "How much is the housing allowance?"}, {Role: "assistant", Content: "Up to 200,000 won."}}
			if diff := cmp.Diff(wantHist, last.History); diff != "" {
				t.Errorf("second prompt history (-want +got):\n%s", diff)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("second answer never started")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRetriedClientIDIsAnsweredOnce(t *testing.T) {
	g := &gen{tokens: []string{"ok"}}
	f := newFixture(t, nil, g, "a")
	r, _ := f.svc.CreateRoom(t.Context(), "42", "t")
	first, err := f.svc.Post(t.Context(), r.ID, "42", "hi", "c-1")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, f.store, r.ID, room.TypeAnswerCompleted)
	again, err := f.svc.Post(t.Context(), r.ID, "42", "hi", "c-1")
	if err != nil || !again.Duplicate || again.MessageID != first.MessageID {
		t.Fatalf("retry = %+v, %v; want a duplicate of %s", again, err, first.MessageID)
	}
	evs, _ := f.store.ReadStream(t.Context(), room.Stream(r.ID), domain.ReadStreamOptions{})
	n := 0
	for _, ev := range evs {
		if ev.Type == room.TypeMessagePosted || ev.Type == room.TypeAnswerStarted {
			n++
		}
	}
	if n != 2 {
		t.Errorf("stream has %d MessagePosted/AnswerStarted, want 2", n)
	}
}

func TestBusyWhileStreamingThenCancel(t *testing.T) {
	g := &gen{tokens: []string{"a", "b", "c"}, gate: make(chan struct{})}
	f := newFixture(t, nil, g, "a")
	r, _ := f.svc.CreateRoom(t.Context(), "42", "t")
	if _, err := f.svc.Post(t.Context(), r.ID, "42", "one", ""); err != nil {
		t.Fatal(err)
	}
	g.gate <- struct{}{} // one chunk out
	waitFor(t, f.store, r.ID, room.TypeAnswerChunk)
	if _, err := f.svc.Post(t.Context(), r.ID, "42", "two", ""); !errors.Is(err, room.ErrBusy) {
		t.Fatalf("post while streaming: %v, want busy", err)
	}
	if err := f.svc.Cancel(t.Context(), r.ID, "43"); domain.ErrorCode(err) != domain.EFORBIDDEN {
		t.Errorf("cancel by a stranger: %v, want forbidden", err)
	}
	if err := f.svc.Cancel(t.Context(), r.ID, "42"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, f.store, r.ID, room.TypeAnswerCancelled)
	f.shutdown()
	evs, _ := f.store.ReadStream(t.Context(), room.Stream(r.ID), domain.ReadStreamOptions{})
	last := evs[len(evs)-1]
	var c room.AnswerCancelled
	_ = json.Unmarshal(last.Data, &c)
	if last.Type != room.TypeAnswerCancelled || c.Text != "a" || c.Reason != room.ReasonCancelled {
		t.Errorf("last event %s %+v, want AnswerCancelled with text \"a\" and nothing after", last.Type, c)
	}
}

func TestGeneratorErrorAndShutdownFailTheAnswer(t *testing.T) {
	t.Run("generator error", func(t *testing.T) {
		f := newFixture(t, nil, &gen{tokens: []string{"x"}, err: errors.New("model crashed")}, "a")
		r, _ := f.svc.CreateRoom(t.Context(), "42", "t")
		f.svc.Post(t.Context(), r.ID, "42", "q", "")
		evs := waitFor(t, f.store, r.ID, room.TypeAnswerFailed)
		var fl room.AnswerFailed
		_ = json.Unmarshal(evs[len(evs)-1].Data, &fl)
		if fl.Reason != room.ReasonGeneratorError || fl.Text != "x" {
			t.Errorf("failed %+v", fl)
		}
	})
	t.Run("shutdown mid-answer", func(t *testing.T) {
		g := &gen{tokens: []string{"x", "y"}, gate: make(chan struct{})}
		f := newFixture(t, nil, g, "a")
		r, _ := f.svc.CreateRoom(t.Context(), "42", "t")
		f.svc.Post(t.Context(), r.ID, "42", "q", "")
		g.gate <- struct{}{}
		waitFor(t, f.store, r.ID, room.TypeAnswerChunk)
		f.shutdown() // the grace passes, the generator is cancelled
		evs, _ := f.store.ReadStream(t.Context(), room.Stream(r.ID), domain.ReadStreamOptions{})
		var fl room.AnswerFailed
		_ = json.Unmarshal(evs[len(evs)-1].Data, &fl)
		if evs[len(evs)-1].Type != room.TypeAnswerFailed || fl.Reason != room.ReasonShutdown || fl.Text != "x" {
			t.Errorf("after shutdown the last event is %s %+v, want AnswerFailed(shutdown)", evs[len(evs)-1].Type, fl)
		}
	})
}

func TestRecoverInterrupted(t *testing.T) {
	store := inmem.New(nil)
	// A process that dies mid-answer: its generator never finishes, and it
	// is never shut down cleanly (no Run), so the answer stays open.
	crashed := chat.NewService(chat.Config{Instance: "a"}, chat.Deps{Store: store, Generator: &gen{tokens: []string{"x"}, gate: make(chan struct{})}, Now: time.Now, Random: rand.Reader})
	r, _ := crashed.CreateRoom(t.Context(), "42", "t")
	if _, err := crashed.Post(t.Context(), r.ID, "42", "q", ""); err != nil {
		t.Fatal(err)
	}
	other, _ := crashed.CreateRoom(t.Context(), "42", "t2")
	otherSvc := chat.NewService(chat.Config{Instance: "b"}, chat.Deps{Store: store, Generator: &gen{tokens: []string{"x"}, gate: make(chan struct{})}, Now: time.Now, Random: rand.Reader})
	otherSvc.Post(t.Context(), other.ID, "42", "q", "")

	restarted := newFixture(t, store, &gen{}, "a")
	n, err := restarted.svc.RecoverInterrupted(t.Context(), time.Hour)
	if err != nil || n != 1 {
		t.Fatalf("recovered %d answers (%v), want 1: only instance a's", n, err)
	}
	evs, _ := store.ReadStream(t.Context(), room.Stream(r.ID), domain.ReadStreamOptions{})
	var fl room.AnswerFailed
	_ = json.Unmarshal(evs[len(evs)-1].Data, &fl)
	if fl.Reason != room.ReasonInterrupted {
		t.Errorf("last event %s %+v, want AnswerFailed(interrupted)", evs[len(evs)-1].Type, fl)
	}
	// Instance b's answer is failed once it has been idle long enough.
	if n, err := restarted.svc.RecoverInterrupted(t.Context(), 0); err != nil || n != 1 {
		t.Errorf("with idle 0, recovered %d (%v), want b's answer", n, err)
	}
}

// finder is an OpenAnswerFinder with fixed answers.
type finder struct {
	rooms []int64
	pos   domain.Position
}

func (f finder) OpenAnswers(context.Context) ([]int64, domain.Position, error) {
	return f.rooms, f.pos, nil
}

// TestRecoverInterruptedReadsOnlyAfterTheReadModel: with an
// OpenAnswerFinder, the rooms it lists and those whose answers start in
// the log after its position are recovered, and nothing before that
// position is read.
func TestRecoverInterruptedReadsOnlyAfterTheReadModel(t *testing.T) {
	store := inmem.New(nil)
	crashed := chat.NewService(chat.Config{Instance: "a"}, chat.Deps{Store: store, Generator: &gen{tokens: []string{"x"}, gate: make(chan struct{})}, Now: time.Now, Random: rand.Reader})
	open := func() int64 {
		r, err := crashed.CreateRoom(t.Context(), "42", "t")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := crashed.Post(t.Context(), r.ID, "42", "q", ""); err != nil {
			t.Fatal(err)
		}
		return r.ID
	}
	listed, unlisted := open(), open() // both open before the read model's position
	pos, err := store.HeadPosition(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	later := open() // open after it
	notFound := int64(999_999)

	svc := chat.NewService(chat.Config{Instance: "a"}, chat.Deps{Store: store, Generator: &gen{}, Now: time.Now, Random: rand.Reader,
		OpenAnswers: finder{rooms: []int64{listed, notFound}, pos: pos}})
	n, err := svc.RecoverInterrupted(t.Context(), time.Hour)
	if err != nil || n != 2 {
		t.Fatalf("recovered %d (%v), want 2: the listed room and the one after the position", n, err)
	}
	for id, want := range map[int64]string{listed: room.TypeAnswerFailed, later: room.TypeAnswerFailed, unlisted: room.TypeAnswerStarted} {
		evs, _ := store.ReadStream(t.Context(), room.Stream(id), domain.ReadStreamOptions{})
		if got := evs[len(evs)-1].Type; got != want {
			t.Errorf("room %d ends with %s, want %s", id, got, want)
		}
	}
}

func TestCancelFromAnotherProcessStopsTheAnswer(t *testing.T) {
	store := inmem.New(nil)
	g := &gen{tokens: []string{"a", "b", "c", "d"}, gate: make(chan struct{})}
	a := newFixture(t, store, g, "a")
	b := newFixture(t, store, &gen{}, "b")
	r, _ := a.svc.CreateRoom(t.Context(), "42", "t")
	a.svc.Post(t.Context(), r.ID, "42", "q", "")
	g.gate <- struct{}{}
	waitFor(t, store, r.ID, room.TypeAnswerChunk)
	if err := b.svc.Cancel(t.Context(), r.ID, "42"); err != nil {
		t.Fatal(err)
	}
	close(g.gate) // a's generator runs on; its next append conflicts and it abandons
	a.shutdown()
	evs, _ := store.ReadStream(t.Context(), room.Stream(r.ID), domain.ReadStreamOptions{})
	if last := evs[len(evs)-1]; last.Type != room.TypeAnswerCancelled {
		t.Errorf("last event %s, want AnswerCancelled with nothing after it", last.Type)
	}
}
