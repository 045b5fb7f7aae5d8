package rag_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/domain/chat"
	"github.com/parleychat/parley/domain/rag"
	"github.com/parleychat/parley/domain/rag/ragtest"
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
type stuckIndex struct{ ragtest.MemoryIndex }

func (*stuckIndex) Name() string { return "stuck" }
func (*stuckIndex) Search(ctx context.Context, _ []float32, _ rag.SearchOptions) ([]rag.Hit, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// failingIndex fails every search.
type failingIndex struct{ ragtest.MemoryIndex }

func (*failingIndex) Name() string { return "failing" }
func (*failingIndex) Search(context.Context, []float32, rag.SearchOptions) ([]rag.Hit, error) {
	return nil, errors.New("connection refused")
}

func newIndex(t *testing.T) *ragtest.MemoryIndex {
	t.Helper()
	idx := ragtest.NewMemoryIndex()
	chunks := []rag.Chunk{
		{ID: "a", Source: "a.md", Title: "A", Text: "alpha"},
		{ID: "b", Source: "b.md", Title: "B", Text: "beta"},
		{ID: "c", Source: "c.md", Title: "C", Text: "gamma"},
		{ID: "d", Source: "d.md", Title: "D", Text: "delta"},
		{ID: "e", Source: "e.md", Title: "E", Text: "epsilon"},
		{ID: "f", Source: "f.md", Title: "F", Text: "opposite"},
	}
	vecs := [][]float32{{1, 0}, {1, 0.2}, {1, 0.4}, {1, 0.6}, {1, 0.8}, {-1, 0}}
	if err := idx.Upsert(t.Context(), chunks, vecs); err != nil {
		t.Fatal(err)
	}
	return idx
}

func TestRetrieverReturnsTheClosestPassages(t *testing.T) {
	idx := newIndex(t)
	tests := []struct {
		name string
		cfg  rag.RetrieverConfig
		want []string
	}{
		{"default K is 4, best first", rag.RetrieverConfig{}, []string{"a", "b", "c", "d"}},
		{"K", rag.RetrieverConfig{K: 2}, []string{"a", "b"}},
		{"MinScore", rag.RetrieverConfig{K: 10, MinScore: 0.9}, []string{"a", "b", "c"}},
		{"default MinScore drops unrelated chunks", rag.RetrieverConfig{K: 10}, []string{"a", "b", "c", "d", "e"}},
		{"a negative MinScore keeps them", rag.RetrieverConfig{K: 10, MinScore: -1}, []string{"a", "b", "c", "d", "e", "f"}},
		{"Sources", rag.RetrieverConfig{Sources: []string{"e.md", "c.md"}}, []string{"c", "e"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := rag.NewRetriever(fixedEmbedder{vec: []float32{1, 0}}, idx, tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			got, err := r.Retrieve(t.Context(), "which is first?")
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, p := range got.Passages {
				ids = append(ids, p.ChunkID)
			}
			if diff := cmp.Diff(ids, tt.want); diff != "" {
				t.Errorf("passages (-got +want):\n%s", diff)
			}
			if got.Embedder != "fixed" || got.Index != "memory" {
				t.Errorf("retrieval names embedder %q and index %q", got.Embedder, got.Index)
			}
		})
	}
	r, _ := rag.NewRetriever(fixedEmbedder{vec: []float32{1, 0}}, idx, rag.RetrieverConfig{K: 1})
	got, _ := r.Retrieve(t.Context(), "q")
	want := []chat.Passage{{Document: "a.md", Title: "A", ChunkID: "a", Score: 1, Text: "alpha"}}
	if diff := cmp.Diff(got.Passages, want); diff != "" {
		t.Errorf("passage (-got +want):\n%s", diff)
	}
}

func TestRetrieverFailures(t *testing.T) {
	tests := []struct {
		name string
		emb  rag.Embedder
		idx  rag.Index
		want string
	}{
		{"index error", fixedEmbedder{vec: []float32{1, 0}}, &failingIndex{}, "retrieve from failing with fixed: search: connection refused"},
		{"embedder error", fixedEmbedder{err: errors.New("model missing")}, ragtest.NewMemoryIndex(), "embed the question: model missing"},
		{"wrong dimension", fixedEmbedder{vec: []float32{1, 0, 0}}, ragtest.NewMemoryIndex(), "got 3 dimensions, the embedder declares 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := rag.NewRetriever(tt.emb, tt.idx, rag.RetrieverConfig{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := r.Retrieve(t.Context(), "q")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Retrieve error = %v; want one containing %q", err, tt.want)
			}
			if got.Passages != nil || got.Embedder != tt.emb.Name() || got.Index != tt.idx.Name() {
				t.Errorf("failed retrieval = %+v; want no passages and the names", got)
			}
		})
	}
}

func TestRetrieverTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, tt := range []struct {
			timeout, want time.Duration
		}{{0, rag.DefaultTimeout}, {300 * time.Millisecond, 300 * time.Millisecond}} {
			r, err := rag.NewRetriever(fixedEmbedder{vec: []float32{1, 0}}, &stuckIndex{}, rag.RetrieverConfig{Timeout: tt.timeout})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			_, err = r.Retrieve(t.Context(), "q")
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
		r, _ := rag.NewRetriever(fixedEmbedder{vec: []float32{1, 0}}, &stuckIndex{}, rag.RetrieverConfig{})
		if _, err := r.Retrieve(ctx, "q"); !errors.Is(err, context.Canceled) || errors.Is(err, rag.ErrTimeout) {
			t.Errorf("Retrieve with a cancelled context = %v; want context.Canceled, not a timeout", err)
		}
	})
}

func TestNewRetrieverValidates(t *testing.T) {
	_, err := rag.NewRetriever(nil, nil, rag.RetrieverConfig{K: -1, MinScore: 2, Timeout: -time.Second})
	if err == nil {
		t.Fatal("NewRetriever accepted everything wrong")
	}
	for _, want := range []string{"no embedder", "no index", "K -1 is negative", "MinScore 2 is not a cosine similarity", "Timeout -1s is negative"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("NewRetriever error %q does not say %q", err, want)
		}
	}
}
