package ragtest

import (
	"math"
	"testing"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/rag"
)

// The contract's cases about what writes accept and leave behind.

func testBadInput(t *testing.T, newIndex func(*testing.T, int) rag.Index) {
	x := newIndex(t, 4)
	good := chunk("bad.md", 0, "text")
	v := []float32{1, 0, 0, 0}
	sp := rag.TermCounts("text")
	notUUID := good
	notUUID.ID = "chunk-1"
	noSource := chunk("", 0, "text")
	vec := func(d []float32, s rag.SparseVector) []rag.Vectors { return []rag.Vectors{{Dense: d, Sparse: s}} }
	upserts := []struct {
		name    string
		chunks  []rag.Chunk
		vectors []rag.Vectors
	}{
		{"more chunks than vectors", []rag.Chunk{good}, nil},
		{"wrong dimension", []rag.Chunk{good}, vec([]float32{1, 0, 0}, sp)},
		{"no dense vector", []rag.Chunk{good}, vec(nil, sp)},
		{"ID not a UUID", []rag.Chunk{notUUID}, vec(v, sp)},
		{"duplicate ID", []rag.Chunk{good, good}, append(vec(v, sp), vec(v, sp)...)},
		{"no source", []rag.Chunk{noSource}, vec(v, sp)},
		{"zero vector", []rag.Chunk{good}, vec([]float32{0, 0, 0, 0}, sp)},
		{"NaN", []rag.Chunk{good}, vec([]float32{float32(math.NaN()), 0, 0, 0}, sp)},
		{"infinity", []rag.Chunk{good}, vec([]float32{float32(math.Inf(1)), 0, 0, 0}, sp)},
		{"sparse indices out of order", []rag.Chunk{good}, vec(v, rag.SparseVector{Indices: []uint32{5, 2}, Values: []float32{1, 1}})},
		{"sparse index repeated", []rag.Chunk{good}, vec(v, rag.SparseVector{Indices: []uint32{5, 5}, Values: []float32{1, 1}})},
		{"sparse lengths differ", []rag.Chunk{good}, vec(v, rag.SparseVector{Indices: []uint32{5}, Values: []float32{1, 2}})},
		{"sparse value not positive", []rag.Chunk{good}, vec(v, rag.SparseVector{Indices: []uint32{5}, Values: []float32{0}})},
	}
	for _, tt := range upserts {
		err := x.Upsert(t.Context(), tt.chunks, tt.vectors)
		if code := domain.ErrorCode(err); code != domain.EINVALID {
			t.Errorf("Upsert with %s: error %v (code %q), want code %q", tt.name, err, code, domain.EINVALID)
		}
	}
	searches := []struct {
		name string
		q    rag.Query
		opts rag.SearchOptions
	}{
		{"no vector", rag.Query{}, rag.SearchOptions{}},
		{"wrong dimension", rag.Query{Dense: [][]float32{{1, 0}}}, rag.SearchOptions{}},
		{"zero vector", rag.Query{Dense: [][]float32{{0, 0, 0, 0}}}, rag.SearchOptions{}},
		{"bad sparse query", rag.Query{Sparse: []rag.SparseVector{{Indices: []uint32{3, 1}, Values: []float32{1, 1}}}}, rag.SearchOptions{}},
		{"negative K", rag.Query{Dense: [][]float32{v}}, rag.SearchOptions{K: -1}},
		{"negative Candidates", rag.Query{Dense: [][]float32{v}}, rag.SearchOptions{Candidates: -1}},
		{"NaN MinSimilarity", rag.Query{Dense: [][]float32{v}}, rag.SearchOptions{MinSimilarity: math.NaN()}},
		{"MinRelevance over 1", rag.Query{Sparse: []rag.SparseVector{sp}}, rag.SearchOptions{MinRelevance: 1.5}},
	}
	for _, tt := range searches {
		_, err := x.Search(t.Context(), tt.q, tt.opts)
		if code := domain.ErrorCode(err); code != domain.EINVALID {
			t.Errorf("Search with %s: error %v (code %q), want code %q", tt.name, err, code, domain.EINVALID)
		}
	}
	if got := sortedSources(t, x); len(got) != 0 {
		t.Errorf("rejected upserts left sources %v", got)
	}
}

func testAllOrNothing(t *testing.T, newIndex func(*testing.T, int) rag.Index) {
	x := newIndex(t, 4)
	chunks := []rag.Chunk{chunk("n.md", 0, "a"), chunk("n.md", 1, "b"), chunk("n.md", 2, "c")}
	err := x.Upsert(t.Context(), chunks, VectorsOf(chunks, [][]float32{{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 0, 0}}))
	if err == nil {
		t.Fatalf("Upsert with a zero vector last: nil error")
	}
	if got := sortedSources(t, x); len(got) != 0 {
		t.Errorf("a rejected batch left %v: want nothing written", got)
	}
	if hits := search(t, x, axis(4, 0, 1), rag.SearchOptions{K: 10, MinSimilarity: -1}); len(hits) != 0 {
		t.Errorf("a rejected batch left searchable chunks %v", ids(hits))
	}
}

func testReplaceSource(t *testing.T, newIndex func(*testing.T, int) rag.Index) {
	x := newIndex(t, 4)
	r, ok := x.(rag.SourceReplacer)
	if !ok {
		t.Skipf("%s does not implement rag.SourceReplacer", x.Name())
	}
	old := spread(t, x, 4, 3, "r.md")
	other := spread(t, x, 4, 2, "other.md")
	kept := old[1] // same ID in the new version: unchanged chunk
	changed := chunk("r.md", 2, "rewritten third chunk")
	added := chunk("r.md", 3, "a fourth chunk")
	news := []rag.Chunk{kept, changed, added}
	err := r.ReplaceSource(t.Context(), "r.md", news, VectorsOf(news, [][]float32{{1, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}}))
	if err != nil {
		t.Fatalf("ReplaceSource: %v", err)
	}
	settle(t, x)
	want := map[string][]string{"r.md": idsOf(kept, changed, added), "other.md": idsOf(other...)}
	if diff := sourcesDiff(want, sortedSources(t, x)); diff != "" {
		t.Errorf("Sources after ReplaceSource (-want +got):\n%s", diff)
	}
	hits := search(t, x, []float32{0, 0, 0, 1}, rag.SearchOptions{K: 1})
	if len(hits) != 1 || hits[0].ChunkID != added.ID {
		t.Errorf("Search for the added chunk's vector = %v, want [%s]", ids(hits), added.ID)
	}
	// A chunk of another source is refused, and nothing changes.
	bad := []rag.Chunk{chunk("other.md", 9, "x")}
	err = r.ReplaceSource(t.Context(), "r.md", bad, VectorsOf(bad, [][]float32{{1, 0, 0, 0}}))
	if code := domain.ErrorCode(err); code != domain.EINVALID {
		t.Errorf("ReplaceSource with another source's chunk: error %v (code %q), want %q", err, code, domain.EINVALID)
	}
	if diff := sourcesDiff(want, sortedSources(t, x)); diff != "" {
		t.Errorf("Sources after a refused ReplaceSource (-want +got):\n%s", diff)
	}
	// Replacing with nothing removes the source.
	if err := r.ReplaceSource(t.Context(), "r.md", nil, nil); err != nil {
		t.Fatalf("ReplaceSource with no chunks: %v", err)
	}
	if diff := sourcesDiff(map[string][]string{"other.md": idsOf(other...)}, sortedSources(t, x)); diff != "" {
		t.Errorf("Sources after ReplaceSource with no chunks (-want +got):\n%s", diff)
	}
}
