package chat_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/adapters/inmem"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/chat"
	"github.com/parleychat/parley/domain/domaintest"
	"github.com/parleychat/parley/domain/rag"
	"github.com/parleychat/parley/domain/rag/ragtest"
	"github.com/parleychat/parley/domain/room"
)

// retrievalCorpus is a tiny corpus for the pipeline tests.
var retrievalCorpus = []ragtest.Document{
	{Source: "housing/rent.en.md", Title: "Youth Rent Support", Lang: "en", Topic: "housing",
		Text: "# Youth Rent Support\n\nYoung people living apart from their parents receive up to 200,000 won of rent support a month.\n\n" +
			"## Applying\n\nApply for rent support at the community centre with your lease. See [the portal](https://evil.example/x?q=1)."},
	{Source: "jobs/allowance.en.md", Title: "Job Seeker Allowance", Lang: "en", Topic: "jobs",
		Text: "# Job Seeker Allowance\n\nJob seekers receive 500,000 won a month for six months while they search for work."},
	{Source: "education/scholarship.en.md", Title: "National Scholarship", Lang: "en", Topic: "education",
		Text: "# National Scholarship\n\nThe scholarship pays university tuition according to family income band."},
}

func newRetriever(t *testing.T, idx rag.Index, cfg rag.RetrieverConfig) *rag.Retriever {
	t.Helper()
	if mem, ok := idx.(*ragtest.MemoryIndex); ok {
		if _, err := ragtest.Ingest(t.Context(), nil, mem, retrievalCorpus); err != nil {
			t.Fatal(err)
		}
	}
	r, err := rag.NewRetriever(rag.RetrieverDeps{Index: idx}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// stuckIndex never answers a search before its context ends, like an
// index server that accepted the connection and hangs.
type stuckIndex struct{ *ragtest.MemoryIndex }

func (stuckIndex) Name() string { return "stuck" }
func (stuckIndex) Search(ctx context.Context, _ rag.Query, _ rag.SearchOptions) (rag.Result, error) {
	<-ctx.Done()
	return rag.Result{}, ctx.Err()
}

// downIndex fails every search at once.
type downIndex struct{ *ragtest.MemoryIndex }

func (downIndex) Name() string { return "down" }
func (downIndex) Search(context.Context, rag.Query, rag.SearchOptions) (rag.Result, error) {
	return rag.Result{}, errors.New("dial tcp 10.0.0.9:6334: connection refused")
}

// newRetrievalFixture runs a Service retrieving with r and returns it with
// a new room's ID.
func newRetrievalFixture(t *testing.T, g chat.Generator, r chat.Retriever) (*fixture, int64) {
	t.Helper()
	f := startFixture(t, nil, chat.Config{Instance: "a"}, chat.Deps{Generator: g, Retriever: r})
	rm, err := f.svc.CreateRoom(t.Context(), "42", "Policies")
	if err != nil {
		t.Fatal(err)
	}
	return f, rm.ID
}

// decodeAll decodes a room's events.
func decodeAll(t *testing.T, evs []domain.RecordedEvent) []room.Event {
	t.Helper()
	out := make([]room.Event, len(evs))
	for i, ev := range evs {
		p, err := room.Decode(ev, false)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = p
	}
	return out
}

func find[E room.Event](evs []room.Event) (E, int) {
	for i, e := range evs {
		if v, ok := e.(E); ok {
			return v, i
		}
	}
	var zero E
	return zero, -1
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func TestAnswerIsGroundedInRetrievedPassages(t *testing.T) {
	g := &gen{tokens: []string{"Up to ", "200,000 won [1]."}}
	f, id := newRetrievalFixture(t, g, newRetriever(t, ragtest.NewMemoryIndex(0), rag.RetrieverConfig{K: 2}))
	res, err := f.svc.Post(t.Context(), id, "42", "How much rent support can I get each month?", "")
	if err != nil {
		t.Fatal(err)
	}
	raw := waitFor(t, f.store, id, room.TypeAnswerCompleted)
	want := []string{room.TypeRoomCreated, room.TypeMessagePosted, room.TypeAnswerStarted, room.TypeRetrievalRecorded,
		room.TypeAnswerChunk, room.TypeAnswerCompleted}
	if diff := cmp.Diff(types(raw), want); diff != "" {
		t.Fatalf("event types (-got +want):\n%s", diff)
	}
	evs := decodeAll(t, raw)
	rec, at := find[room.RetrievalRecorded](evs)
	if wantID := domain.NameUUID(res.AnswerID, "retrieval"); raw[at].ID != wantID {
		t.Errorf("RetrievalRecorded has event ID %s, want %s (derived from the answer)", raw[at].ID, wantID)
	}

	g.mu.Lock()
	prompt := g.last
	g.mu.Unlock()
	if len(prompt.Context) != 2 || prompt.Context[0].Document != "housing/rent.en.md" || prompt.Context[0].Title != "Youth Rent Support" {
		t.Fatalf("the generator was given passages %+v; want the two closest, the rent document first", prompt.Context)
	}
	var wantHits []room.RetrievalHit
	var wantSources []room.Source
	for _, p := range prompt.Context {
		wantHits = append(wantHits, room.RetrievalHit{ChunkID: p.ChunkID, Source: p.Document, Score: p.Score})
		wantSources = append(wantSources, room.Source{Document: p.Document, Title: p.Title, ChunkID: p.ChunkID, Score: p.Score})
	}
	// How the hits were found: the one sparse list, fused.
	if len(rec.Retrievers) != 1 || rec.Retrievers[0].Kind != rag.KindSparse || rec.Retrievers[0].Query != rec.Query ||
		len(rec.Fused) < len(rec.Hits) || rec.Fused[0] != rec.Hits[0] {
		t.Errorf("RetrievalRecorded lists %+v, fused %+v; want one sparse list for the question, fused, the first hit first", rec.Retrievers, rec.Fused)
	}
	rec.Retrievers, rec.Fused = nil, nil
	wantRec := room.RetrievalRecorded{AnswerID: res.AnswerID, Query: "How much rent support can I get each month?", Hits: wantHits,
		Embedder: rag.SparseEncoding + "/bm25", Index: "memory", Model: "test/gen", PromptHash: sha256Hex(chat.CanonicalPrompt(prompt))}
	if diff := cmp.Diff(rec, wantRec); diff != "" {
		t.Errorf("RetrievalRecorded (-got +want):\n%s", diff)
	}
	if rec.PromptHash != chat.PromptHash(prompt) || len(rec.PromptHash) != 64 {
		t.Errorf("PromptHash %q is not the hash of the prompt the generator was given", rec.PromptHash)
	}

	done, _ := find[room.AnswerCompleted](evs)
	if diff := cmp.Diff(done.Sources, wantSources, cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Snippet" }, cmp.Ignore())); diff != "" {
		t.Errorf("AnswerCompleted.Sources (-got +want):\n%s", diff)
	}
	for _, s := range done.Sources {
		if s.Snippet == "" || strings.Contains(s.Snippet, "http") || strings.Contains(s.Snippet, "](") {
			t.Errorf("snippet %q is empty or carries a link", s.Snippet)
		}
	}
	if done.Text != "Up to 200,000 won [1]." {
		t.Errorf("answer text %q", done.Text)
	}
}

func TestRetrievalFailureAnswersWithoutSources(t *testing.T) {
	tests := []struct {
		name      string
		idx       rag.Index
		question  string
		notice    string
		wantError string
	}{
		{"index down", downIndex{}, "How much rent support can I get?", chat.NoSourcesNotice, "connection refused"},
		{"index down, Korean question", downIndex{}, "월세 지원은 얼마인가요?", chat.NoSourcesNoticeKo, "connection refused"},
		{"index stuck", stuckIndex{}, "How much rent support can I get?", chat.NoSourcesNotice, "retrieval timed out after 2s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g := &gen{tokens: []string{"I cannot ", "say."}}
				f, id := newRetrievalFixture(t, g, newRetriever(t, tt.idx, rag.RetrieverConfig{}))
				start := time.Now()
				if _, err := f.svc.Post(t.Context(), id, "42", tt.question, ""); err != nil {
					t.Fatal(err)
				}
				raw := waitFor(t, f.store, id, room.TypeAnswerCompleted)
				// The bubble's clock moves only when every goroutine waits:
				// the time taken is the retrieval's bound, never more.
				if took := time.Since(start); took > rag.DefaultTimeout+50*time.Millisecond {
					t.Errorf("the answer took %s; retrieval is bounded by %s", took, rag.DefaultTimeout)
				}
				evs := decodeAll(t, raw)
				rec, at := find[room.RetrievalRecorded](evs)
				_, firstChunk := find[room.AnswerChunk](evs)
				if at < 0 || firstChunk < at {
					t.Fatalf("RetrievalRecorded at %d, first chunk at %d; want the record before every chunk", at, firstChunk)
				}
				if !strings.Contains(rec.Error, tt.wantError) || len(rec.Hits) != 0 || rec.Index != tt.idx.Name() || rec.Embedder == "" {
					t.Errorf("RetrievalRecorded %+v; want error %q, no hits, and the index and embedder named", rec, tt.wantError)
				}
				g.mu.Lock()
				prompt := g.last
				g.mu.Unlock()
				if len(prompt.Context) != 0 || rec.PromptHash != chat.PromptHash(prompt) {
					t.Errorf("generator got passages %v, hash %s; want none and the hash of its prompt", prompt.Context, rec.PromptHash)
				}
				first := evs[firstChunk].(room.AnswerChunk)
				done, _ := find[room.AnswerCompleted](evs)
				if first.Seq != 0 || first.Delta != tt.notice+"\n\n" || done.Text != tt.notice+"\n\nI cannot say." {
					t.Errorf("first chunk %+v, answer %q; want the notice first", first, done.Text)
				}
				if done.Sources == nil || len(done.Sources) != 0 {
					t.Errorf("sources %#v; want an empty list", done.Sources)
				}
			})
		})
	}
}

// TestRetrievalOutageLogsOnce: with the index down every answer goes
// without documents, but only the first failure of a minute is logged,
// and the recovery once.
func TestRetrievalOutageLogsOnce(t *testing.T) {
	var logs domaintest.SyncBuffer
	idx := &switchIndex{MemoryIndex: ragtest.NewMemoryIndex(0)}
	idx.down.Store(true)
	f := startFixture(t, nil, chat.Config{Instance: "a"}, chat.Deps{Generator: &gen{tokens: []string{"ok"}},
		Retriever: newRetriever(t, idx, rag.RetrieverConfig{}), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	rm, err := f.svc.CreateRoom(t.Context(), "42", "Policies")
	if err != nil {
		t.Fatal(err)
	}
	ask := func(n int) {
		t.Helper()
		if _, err := f.svc.Post(t.Context(), rm.ID, "42", "How much rent support can I get?", ""); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, func() bool { return countType(t, f.store, rm.ID, room.TypeAnswerCompleted) == n })
	}
	for i := range 3 {
		ask(i + 1)
	}
	if n := strings.Count(logs.String(), "retrieval failed"); n != 1 {
		t.Errorf("%d warnings for 3 failed retrievals within a minute, want 1; logs:\n%s", n, logs.String())
	}
	idx.down.Store(false)
	ask(4)
	ask(5)
	if n := strings.Count(logs.String(), "retrieval works again"); n != 1 || !strings.Contains(logs.String(), "failures_not_logged=2") {
		t.Errorf("want one recovery line counting the 2 failures not logged; logs:\n%s", logs.String())
	}
}

// switchIndex fails every search while down is set.
type switchIndex struct {
	*ragtest.MemoryIndex
	down atomic.Bool
}

func (x *switchIndex) Search(ctx context.Context, q rag.Query, opts rag.SearchOptions) (rag.Result, error) {
	if x.down.Load() {
		return rag.Result{}, errors.New("dial tcp 10.0.0.9:6334: connection refused")
	}
	return x.MemoryIndex.Search(ctx, q, opts)
}

func TestCancelWhileRetrieving(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := &gen{tokens: []string{"never"}}
		f, id := newRetrievalFixture(t, g, newRetriever(t, stuckIndex{}, rag.RetrieverConfig{}))
		if _, err := f.svc.Post(t.Context(), id, "42", "rent support", ""); err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // the answer is waiting on the index
		if err := f.svc.Cancel(t.Context(), id, "42"); err != nil {
			t.Fatal(err)
		}
		f.shutdown()
		evs, _ := f.store.ReadStream(t.Context(), room.Stream(id), domain.ReadStreamOptions{})
		want := []string{room.TypeRoomCreated, room.TypeMessagePosted, room.TypeAnswerStarted, room.TypeAnswerCancelled}
		if diff := cmp.Diff(types(evs), want); diff != "" {
			t.Errorf("event types (-got +want):\n%s", diff)
		}
	})
}

// recordGate holds the append of the retrieval record until released.
type recordGate struct {
	*inmem.Store
	release chan struct{}
}

func (s *recordGate) Append(ctx context.Context, stream string, exp domain.ExpectedVersion, evs ...domain.EventData) (domain.AppendResult, error) {
	if evs[0].Type == room.TypeRetrievalRecorded {
		<-s.release
	}
	return s.Store.Append(ctx, stream, exp, evs...)
}

// askedGen reports its call on asked, then emits one delta.
type askedGen struct{ asked chan struct{} }

func (askedGen) Name() string { return "test/asked" }

func (g askedGen) Generate(_ context.Context, _ chat.Prompt, emit func(string) error) error {
	close(g.asked)
	return emit("Up to 200,000 won.")
}

// TestModelIsAskedWhileTheRecordIsWritten: the model is asked for the
// answer as soon as retrieval is done, while the retrieval record is
// being appended (the model's first token takes longer than a commit);
// the record still comes before the first chunk.
func TestModelIsAskedWhileTheRecordIsWritten(t *testing.T) {
	store := &recordGate{Store: inmem.New(nil), release: make(chan struct{})}
	g := askedGen{asked: make(chan struct{})}
	svc := runService(t, chat.Config{}, chat.Deps{Store: store, Generator: g, Retriever: newRetriever(t, ragtest.NewMemoryIndex(0), rag.RetrieverConfig{})})
	r, err := svc.CreateRoom(t.Context(), "42", "Policies")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Post(t.Context(), r.ID, "42", "How much is the rent support?", ""); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.asked:
	case <-time.After(10 * time.Second):
		t.Fatal("the model was not asked while the retrieval record was being appended")
	}
	close(store.release)
	evs := decodeAll(t, waitFor(t, store.Store, r.ID, room.TypeAnswerCompleted))
	_, rec := find[room.RetrievalRecorded](evs)
	_, chunk := find[room.AnswerChunk](evs)
	if rec < 0 || chunk < 0 || rec > chunk {
		t.Errorf("record at %d, first chunk at %d: want the record first", rec, chunk)
	}
}
