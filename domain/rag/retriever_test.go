package rag_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/domain/chat"
	"github.com/parleychat/parley/domain/domaintest"
	"github.com/parleychat/parley/domain/rag"
	"github.com/parleychat/parley/domain/rag/ragtest"
	"github.com/parleychat/parley/domain/room"
)

// fixedEmbedder embeds every text as vec, or fails with err.
type fixedEmbedder struct {
	vec []float32
	err error
}

func (e fixedEmbedder) Dimension() int { return 2 }
func (e fixedEmbedder) Name() string   { return "fixed" }
func (e fixedEmbedder) Embed(_ context.Context, texts []string) ([][]float32, error) {
	if e.err != nil {
		return nil, e.err
	}
	out := make([][]float32, len(texts))
	for i := range out {
		out[i] = e.vec
	}
	return out, nil
}

// stuckIndex blocks every search until its context ends, like a client of
// an index server that does not answer.
type stuckIndex struct{ *ragtest.MemoryIndex }

func (stuckIndex) Name() string { return "stuck" }
func (stuckIndex) Search(ctx context.Context, _ rag.Query, _ rag.SearchOptions) (rag.Result, error) {
	<-ctx.Done()
	return rag.Result{}, ctx.Err()
}

// failingIndex fails every search.
type failingIndex struct{ *ragtest.MemoryIndex }

func (failingIndex) Name() string { return "failing" }
func (failingIndex) Search(context.Context, rag.Query, rag.SearchOptions) (rag.Result, error) {
	return rag.Result{}, errors.New("connection refused")
}

// newIndex holds six one-chunk documents about rent and loans, with dense
// vectors for a 2-dimensional embedder.
func newIndex(t *testing.T) *ragtest.MemoryIndex {
	t.Helper()
	idx := ragtest.NewMemoryIndex(2)
	chunks := []rag.Chunk{
		rag.NewChunk("a.md", "A", 0, "youth rent grant paid monthly", nil),
		rag.NewChunk("b.md", "B", 0, "rent grant for students", nil),
		rag.NewChunk("c.md", "C", 0, "jeonse deposit loan and rent", nil),
		rag.NewChunk("d.md", "D", 0, "rent", nil),
		rag.NewChunk("e.md", "E", 0, "student loan interest", nil),
		rag.NewChunk("f.md", "F", 0, "mental health counselling voucher", nil),
	}
	vecs := [][]float32{{1, 0}, {1, 0.2}, {1, 0.4}, {1, 0.6}, {1, 0.8}, {-1, 0}}
	vs := make([]rag.Vectors, len(chunks))
	for i, c := range chunks {
		vs[i] = rag.Vectors{Dense: vecs[i], Sparse: rag.TermCounts(rag.IndexText(c))}
	}
	if err := idx.Upsert(t.Context(), chunks, vs); err != nil {
		t.Fatal(err)
	}
	return idx
}

func sources(ps []chat.Passage) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Document)
	}
	return out
}

func TestRetrieverReturnsTheBestPassages(t *testing.T) {
	idx := newIndex(t)
	tests := []struct {
		name string
		cfg  rag.RetrieverConfig
		want []string
	}{
		{"K is 4, best first", rag.RetrieverConfig{MinRelevance: -1}, []string{"a.md", "b.md", "d.md", "c.md"}},
		{"K", rag.RetrieverConfig{K: 2, MinRelevance: -1}, []string{"a.md", "b.md"}},
		{"the default MinRelevance drops a match on one common word", rag.RetrieverConfig{}, []string{"a.md", "b.md", "d.md"}},
		{"a higher one drops more", rag.RetrieverConfig{MinRelevance: 0.1}, []string{"a.md", "b.md"}},
		{"Sources", rag.RetrieverConfig{MinRelevance: -1, Sources: []string{"e.md", "c.md"}}, []string{"c.md"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := rag.NewRetriever(rag.RetrieverDeps{Index: idx}, tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			got, err := r.Retrieve(t.Context(), "Who gets the youth rent grant?")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(sources(got.Passages), tt.want); diff != "" {
				t.Errorf("passages (-got +want):\n%s", diff)
			}
			if got.Embedder != rag.SparseEncoding+"/bm25" || got.Index != "memory" {
				t.Errorf("retrieval names method %q and index %q", got.Embedder, got.Index)
			}
		})
	}
}

func TestRetrieverRecordsListsAndFusion(t *testing.T) {
	r, err := rag.NewRetriever(rag.RetrieverDeps{Index: newIndex(t), Embedder: fixedEmbedder{vec: []float32{1, 0.8}}}, rag.RetrieverConfig{K: 2})
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.Retrieve(t.Context(), "student loan")
	if err != nil {
		t.Fatal(err)
	}
	if got.Embedder != rag.SparseEncoding+"/bm25+fixed" || len(got.Retrievers) != 2 {
		t.Fatalf("retrieval %q with %d lists, want a hybrid with 2", got.Embedder, len(got.Retrievers))
	}
	sp, de := got.Retrievers[0], got.Retrievers[1]
	if sp.Kind != rag.KindSparse || sp.Model != rag.SparseEncoding+"/bm25" || sp.Query != "student loan" || len(sp.Hits) == 0 || sp.Hits[0].Source != "e.md" {
		t.Errorf("sparse run %+v, want e.md first for the question", sp)
	}
	if de.Kind != rag.KindDense || de.Model != "fixed" || len(de.Hits) != 5 || de.Hits[0].Source != "e.md" {
		t.Errorf("dense run %+v, want e.md first and the opposite chunk dropped", de)
	}
	// e.md is first in both lists: 1/2 + 1/2.
	if len(got.Fused) == 0 || got.Fused[0] != (room.RetrievalHit{ChunkID: got.Passages[0].ChunkID, Source: "e.md", Score: 1}) {
		t.Errorf("fused %+v, want e.md first with 1", got.Fused)
	}
	if len(got.Passages) != 2 || got.Passages[0].Score != 1 || got.Passages[0].Text != "student loan interest" || got.Passages[0].Title != "E" {
		t.Errorf("passages %+v", got.Passages)
	}
}

func TestDiversify(t *testing.T) {
	hit := func(src string, score float64) rag.Hit {
		return rag.Hit{Chunk: rag.Chunk{ID: src + "-" + time.Duration(score*1000).String(), Source: src}, Score: score}
	}
	tests := []struct {
		name string
		hits []rag.Hit
		k    int
		want []string
	}{
		{"one chunk per document", []rag.Hit{hit("a", .9), hit("b", .8), hit("a", .7), hit("c", .6), hit("d", .5)}, 4, []string{"a", "b", "c", "d"}},
		{"the clear first document keeps its next chunk", []rag.Hit{hit("a", .9), hit("a", .85), hit("b", .8), hit("c", .6)}, 4, []string{"a", "a", "b", "c"}},
		{"but not one tied with another document", []rag.Hit{hit("a", .9), hit("a", .8), hit("b", .8), hit("c", .6)}, 4, []string{"a", "b", "c"}},
		{"fewer documents, fewer passages", []rag.Hit{hit("a", .9), hit("b", .8), hit("a", .7), hit("b", .6)}, 4, []string{"a", "b"}},
		{"K", []rag.Hit{hit("a", .9), hit("b", .8), hit("c", .7)}, 2, []string{"a", "b"}},
		{"none", nil, 4, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, h := range rag.Diversify(tt.hits, tt.k) {
				got = append(got, h.Chunk.Source)
			}
			if diff := cmp.Diff(got, tt.want); diff != "" {
				t.Errorf("Diversify (-got +want):\n%s", diff)
			}
		})
	}
}

// rewriter answers with queries after delay, or fails with err.
type rewriter struct {
	queries []string
	delay   time.Duration
	err     error
}

func (w rewriter) Name() string { return "test/rewriter" }
func (w rewriter) Rewrite(ctx context.Context, q string) ([]string, error) {
	select {
	case <-time.After(w.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return w.queries, w.err
}

func TestRetrieverRewritesTheQuestion(t *testing.T) {
	idx := ragtest.NewMemoryIndex(0)
	c := rag.NewChunk("credit.ko.md", "청년 신용회복 지원", 0, "연체한 청년의 채무를 조정해 줍니다.", nil)
	if err := idx.Upsert(t.Context(), []rag.Chunk{c}, []rag.Vectors{{Sparse: rag.TermCounts(rag.IndexText(c))}}); err != nil {
		t.Fatal(err)
	}
	const question = "Is there debt restructuring for young people?"
	synctest.Test(t, func(t *testing.T) {
		for _, tt := range []struct {
			name    string
			w       rewriter
			found   bool
			rewrite *room.QueryRewrite
			logged  string
		}{
			{"into Korean, the corpus's language", rewriter{queries: []string{"청년 채무 조정", question, " "}, delay: time.Second}, true,
				&room.QueryRewrite{Model: "test/rewriter", Queries: []string{"청년 채무 조정"}}, ""},
			{"timed out: skipped and logged", rewriter{queries: []string{"청년 채무 조정"}, delay: time.Minute}, false,
				&room.QueryRewrite{Model: "test/rewriter", Error: "timed out after 3s: context deadline exceeded"}, "query rewrite skipped"},
			{"failed: skipped and logged", rewriter{err: errors.New("model not found")}, false,
				&room.QueryRewrite{Model: "test/rewriter", Error: "model not found"}, "model not found"},
		} {
			var log domaintest.SyncBuffer
			r, err := rag.NewRetriever(rag.RetrieverDeps{Index: idx, Rewriter: tt.w, Logger: slog.New(slog.NewTextHandler(&log, nil))}, rag.RetrieverConfig{})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			got, err := r.Retrieve(t.Context(), question)
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			if took := time.Since(start); took > rag.DefaultRewriteTimeout {
				t.Errorf("%s: took %s, more than the rewrite's bound", tt.name, took)
			}
			if found := len(got.Passages) == 1; found != tt.found {
				t.Errorf("%s: passages %v, want found %v", tt.name, got.Passages, tt.found)
			}
			if diff := cmp.Diff(got.Rewrite, tt.rewrite); diff != "" {
				t.Errorf("%s: rewrite record (-got +want):\n%s", tt.name, diff)
			}
			if tt.found && (len(got.Retrievers) != 2 || got.Retrievers[1].Query != "청년 채무 조정") {
				t.Errorf("%s: runs %+v, want the question's and the rewrite's", tt.name, got.Retrievers)
			}
			if l := log.String(); (tt.logged == "") != (l == "") || !strings.Contains(l, tt.logged) {
				t.Errorf("%s: logged %q, want %q", tt.name, l, tt.logged)
			}
		}
	})
}

func TestRetrieverFailures(t *testing.T) {
	tests := []struct {
		name string
		emb  rag.Embedder
		idx  rag.Index
		want string
	}{
		{"index error", nil, failingIndex{}, "retrieve from failing with " + rag.SparseEncoding + "/bm25: search: connection refused"},
		{"embedder error", fixedEmbedder{err: errors.New("model missing")}, ragtest.NewMemoryIndex(2), "embed the question: model missing"},
		{"wrong dimension", fixedEmbedder{vec: []float32{1, 0, 0}}, ragtest.NewMemoryIndex(2), "got 3 dimensions, the embedder declares 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := rag.NewRetriever(rag.RetrieverDeps{Index: tt.idx, Embedder: tt.emb}, rag.RetrieverConfig{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := r.Retrieve(t.Context(), "rent")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Retrieve error = %v; want one containing %q", err, tt.want)
			}
			if got.Passages != nil || got.Embedder != r.Method() || got.Index != tt.idx.Name() {
				t.Errorf("failed retrieval = %+v; want no passages and the names", got)
			}
		})
	}
	r, _ := rag.NewRetriever(rag.RetrieverDeps{Index: newIndex(t)}, rag.RetrieverConfig{})
	if _, err := r.Retrieve(t.Context(), "  "); err == nil {
		t.Error("Retrieve of an empty question: nil error")
	}
	// A question without a term, and no embedder: nothing to find, no error.
	if got, err := r.Retrieve(t.Context(), "???"); err != nil || len(got.Passages) != 0 {
		t.Errorf("Retrieve(???) = %+v, %v; want nothing and no error", got, err)
	}
}

func TestRetrieverTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, tt := range []struct {
			timeout, want time.Duration
		}{{0, rag.DefaultTimeout}, {300 * time.Millisecond, 300 * time.Millisecond}} {
			r, err := rag.NewRetriever(rag.RetrieverDeps{Index: stuckIndex{}}, rag.RetrieverConfig{Timeout: tt.timeout})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			_, err = r.Retrieve(t.Context(), "rent")
			if took := time.Since(start); took != tt.want {
				t.Errorf("Timeout %s: a stuck index took %s; want exactly %s", tt.timeout, took, tt.want)
			}
			if !errors.Is(err, rag.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "after "+tt.want.String()) {
				t.Errorf("Retrieve error = %v; want ErrTimeout after %s", err, tt.want)
			}
		}
		// A cancelled answer is not a timeout.
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		r, _ := rag.NewRetriever(rag.RetrieverDeps{Index: stuckIndex{}}, rag.RetrieverConfig{})
		if _, err := r.Retrieve(ctx, "rent"); !errors.Is(err, context.Canceled) || errors.Is(err, rag.ErrTimeout) {
			t.Errorf("Retrieve with a cancelled context = %v; want context.Canceled, not a timeout", err)
		}
	})
}

func TestNewRetrieverValidates(t *testing.T) {
	_, err := rag.NewRetriever(rag.RetrieverDeps{}, rag.RetrieverConfig{K: 8, Candidates: 4, MinRelevance: 2, MinSimilarity: 2, RRFK: -1, Timeout: -time.Second})
	if err == nil {
		t.Fatal("NewRetriever accepted everything wrong")
	}
	for _, want := range []string{"no index", "Candidates 4 must be at least K", "MinRelevance 2 is not a share", "MinSimilarity 2 is not a cosine similarity", "RRFK -1 is negative", "Timeout -1s"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("NewRetriever error %q does not say %q", err, want)
		}
	}
}
