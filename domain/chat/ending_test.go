package chat_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleychat/parley/adapters/inmem"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/chat"
	"github.com/parleychat/parley/domain/domaintest"
	"github.com/parleychat/parley/domain/room"
)

// flakyStore is a store that can go down, for appends of some types:
// each such append fails as a database outage does.
type flakyStore struct {
	*inmem.Store
	down  atomic.Bool
	types []string // the appends that fail while down; all when empty
	fails atomic.Int32
}

func (f *flakyStore) Append(ctx context.Context, stream string, exp domain.ExpectedVersion, evs ...domain.EventData) (domain.AppendResult, error) {
	if f.down.Load() && (len(f.types) == 0 || f.matches(evs)) {
		f.fails.Add(1)
		return domain.AppendResult{}, domain.Errorf(domain.EUNAVAILABLE, "the database is down")
	}
	return f.Store.Append(ctx, stream, exp, evs...)
}

func (f *flakyStore) matches(evs []domain.EventData) bool {
	for _, ev := range evs {
		for _, t := range f.types {
			if ev.Type == t {
				return true
			}
		}
	}
	return false
}

func lastEvent(t *testing.T, s domain.StreamReader, id int64) domain.RecordedEvent {
	t.Helper()
	evs, err := s.ReadStream(t.Context(), room.Stream(id), domain.ReadStreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return evs[len(evs)-1]
}

// TestAnswerEndsAfterAStoreOutage: the store is down when the answer's
// end is written; the pipeline retries until it is back, and the room
// takes questions again, without a restart.
// streaming runs a Service over store and has it answer a question in a
// new room with g, until the answer's first chunk is stored; it returns
// the Service and the room.
func streaming(t *testing.T, store chat.Store, g *gen) (*chat.Service, int64) {
	t.Helper()
	svc := runService(t, chat.Config{}, chat.Deps{Store: store, Generator: g})
	r, err := svc.CreateRoom(t.Context(), "42", "t")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Post(t.Context(), r.ID, "42", "q", ""); err != nil {
		t.Fatal(err)
	}
	g.gate <- struct{}{}
	waitFor(t, store, r.ID, room.TypeAnswerChunk)
	return svc, r.ID
}

func TestAnswerEndsAfterAStoreOutage(t *testing.T) {
	store := &flakyStore{Store: inmem.New(nil), types: []string{room.TypeAnswerCompleted}}
	g := &gen{tokens: []string{"a", "b"}, gate: make(chan struct{})}
	svc, id := streaming(t, store, g)
	store.down.Store(true)
	g.gate <- struct{}{} // the last token: the generator ends, the end is due
	waitUntil(t, func() bool { return store.fails.Load() > 0 })
	time.Sleep(300 * time.Millisecond) // an outage of some length
	store.down.Store(false)
	waitFor(t, store, id, room.TypeAnswerCompleted)
	if _, err := svc.Post(t.Context(), id, "42", "again", ""); err != nil {
		t.Errorf("a question after the outage: %v, want it answered (the room must not stay busy)", err)
	}
}

// TestSweeperFailsAnAnswerWhoseEndWasNotWritten: the store stays down
// past AnswerTimeout plus EndGrace, so the pipeline gives up on the end;
// once the store is back, the sweeper fails the answer as interrupted.
func TestSweeperFailsAnAnswerWhoseEndWasNotWritten(t *testing.T) {
	store := &flakyStore{Store: inmem.New(nil), types: []string{room.TypeAnswerCompleted, room.TypeAnswerFailed}}
	g := &gen{tokens: []string{"a"}, gate: make(chan struct{})}
	svc := runService(t, chat.Config{AnswerTimeout: 300 * time.Millisecond, EndGrace: 100 * time.Millisecond,
		SweepInterval: 50 * time.Millisecond}, chat.Deps{Store: store, Generator: g})
	r, _ := svc.CreateRoom(t.Context(), "42", "t")
	if _, err := svc.Post(t.Context(), r.ID, "42", "q", ""); err != nil {
		t.Fatal(err)
	}
	store.down.Store(true)
	g.gate <- struct{}{}
	time.Sleep(600 * time.Millisecond) // past the answer's timeout and grace: the pipeline has given up
	store.down.Store(false)
	evs := waitFor(t, store, r.ID, room.TypeAnswerFailed)
	var fl room.AnswerFailed
	_ = json.Unmarshal(evs[len(evs)-1].Data, &fl)
	if fl.Reason != room.ReasonInterrupted || fl.Text != "a" {
		t.Errorf("the answer ended %+v, want failed as interrupted with its text", fl)
	}
	if _, err := svc.Post(t.Context(), r.ID, "42", "again", ""); err != nil {
		t.Errorf("a question after the sweep: %v", err)
	}
}

// TestSweeperSparesRunningAndYoungAnswers: the sweeper leaves alone an
// answer this process is still streaming.
func TestSweeperSparesRunningAnswers(t *testing.T) {
	store := inmem.New(nil)
	g := &gen{tokens: []string{"a", "b"}, gate: make(chan struct{})}
	svc := runService(t, chat.Config{AnswerTimeout: time.Minute, SweepInterval: 20 * time.Millisecond, RecoverIdle: time.Millisecond}, chat.Deps{Store: store, Generator: g})
	r, _ := svc.CreateRoom(t.Context(), "42", "t")
	if _, err := svc.Post(t.Context(), r.ID, "42", "q", ""); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // ten sweeps
	if last := lastEvent(t, store, r.ID); last.Type != room.TypeAnswerStarted {
		t.Fatalf("after sweeps the answer ends with %s, want it still open", last.Type)
	}
	close(g.gate)
	waitFor(t, store, r.ID, room.TypeAnswerCompleted)
}

// TestStoreThatLostItsTail: the database lost its last commits (a crash
// with asynchronous commits) after the Service had folded them. Its next
// command conflicts, finds the stream shorter than its state, folds it
// again and goes through, instead of conflicting until a restart.
func TestStoreThatLostItsTail(t *testing.T) {
	before := inmem.New(nil)
	sw := domaintest.NewSwapStore(before)
	svc := runService(t, chat.Config{}, chat.Deps{Store: sw, Generator: &gen{tokens: []string{"x", "y"}}})
	r, _ := svc.CreateRoom(t.Context(), "42", "t")
	if _, err := svc.Post(t.Context(), r.ID, "42", "q", ""); err != nil {
		t.Fatal(err)
	}
	all := waitFor(t, before, r.ID, room.TypeAnswerCompleted)
	if _, err := svc.Room(t.Context(), r.ID, "42"); err != nil { // folds the whole stream
		t.Fatal(err)
	}
	// The crash: only the room's creation survives, then recovery fails
	// nothing (the answer's start is gone too).
	after, err := domaintest.Truncated(t.Context(), before, all[0].Stream, 1, inmem.New(nil))
	if err != nil {
		t.Fatal(err)
	}
	sw.Set(after)
	if _, err := svc.Post(t.Context(), r.ID, "42", "after the crash", ""); err != nil {
		t.Fatalf("post after the store lost its tail: %v", err)
	}
	waitFor(t, after.(domain.StreamReader), r.ID, room.TypeAnswerCompleted)
}

// TestPostAdmittedOrder: admit (the rate limit) is asked after the text
// checks and the duplicate check and before the busy check, once.
func TestPostAdmittedOrder(t *testing.T) {
	g := &gen{tokens: []string{"a"}, gate: make(chan struct{})}
	f := newFixture(t, nil, g, "a")
	r, _ := f.svc.CreateRoom(t.Context(), "42", "t")
	var asked int
	admit := func() error { asked++; return nil }
	refuse := func() error { asked++; return domain.Errorf(domain.ERATELIMITED, "slow down") }
	steps := []struct {
		name      string
		text, cid string
		admit     func() error
		wantCode  string
		wantAsked int
	}{
		{"invalid text: not asked", "", "c-1", admit, domain.EINVALID, 0},
		{"refused by admit: nothing stored", "q", "c-1", refuse, domain.ERATELIMITED, 1},
		{"admitted", "q", "c-1", admit, "", 2},
		{"duplicate: not asked", "q", "c-1", refuse, "", 2},
		{"busy: asked first", "other", "c-2", admit, domain.EBUSY, 3},
		{"rate limited before busy", "other", "c-3", refuse, domain.ERATELIMITED, 4},
	}
	for _, st := range steps {
		res, err := f.svc.PostAdmitted(t.Context(), r.ID, "42", st.text, st.cid, st.admit)
		if code := domain.ErrorCode(err); code != st.wantCode || asked != st.wantAsked {
			t.Errorf("%s: error %v (code %q), admit asked %d times; want code %q, %d times", st.name, err, code, asked, st.wantCode, st.wantAsked)
		}
		if st.name == "duplicate: not asked" && !res.Duplicate {
			t.Errorf("%s: %+v, want a duplicate", st.name, res)
		}
	}
	if n := countType(t, f.store, r.ID, room.TypeMessagePosted); n != 1 {
		t.Errorf("%d messages stored, want 1", n)
	}
	close(g.gate)
}

// lyingStore commits an append of chunks, then reports it failed, as a
// database that goes down between its commit and its reply does.
type lyingStore struct {
	*inmem.Store
	armed atomic.Bool
}

func (l *lyingStore) Append(ctx context.Context, stream string, exp domain.ExpectedVersion, evs ...domain.EventData) (domain.AppendResult, error) {
	res, err := l.Store.Append(ctx, stream, exp, evs...)
	if err == nil && evs[0].Type == room.TypeAnswerChunk && l.armed.CompareAndSwap(true, false) {
		return domain.AppendResult{}, domain.Errorf(domain.EUNAVAILABLE, "connection reset after the commit")
	}
	return res, err
}

// TestFailedAnswerKeepsTheLoggedText: an append whose reply was lost had
// committed; the answer fails, and its end says what the log's chunks
// say, as every client folds them, not what the pipeline believed.
func TestFailedAnswerKeepsTheLoggedText(t *testing.T) {
	store := &lyingStore{Store: inmem.New(nil)}
	g := &gen{tokens: []string{"one ", "two ", "three"}, gate: make(chan struct{})}
	_, id := streaming(t, store, g)
	store.armed.Store(true)
	g.gate <- struct{}{} // "two " commits, and its append reports a failure
	evs := waitFor(t, store, id, room.TypeAnswerFailed)
	var chunks string
	for _, ev := range evs {
		if ev.Type == room.TypeAnswerChunk {
			var c room.AnswerChunk
			_ = json.Unmarshal(ev.Data, &c)
			chunks += c.Delta
		}
	}
	var fl room.AnswerFailed
	_ = json.Unmarshal(evs[len(evs)-1].Data, &fl)
	if chunks != "one two " || fl.Text != chunks {
		t.Errorf("the log's chunks say %q, the failure %q; want both \"one two \"", chunks, fl.Text)
	}
	close(g.gate)
}
