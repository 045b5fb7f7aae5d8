// Package ragtest holds the contract suite every rag.Index implementation
// runs: RunIndexTests. Like all of domain, it uses only the standard
// library.
package ragtest

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"testing"

	"github.com/parleychat/parley/domain/rag"
)

// scoreTolerance is how far a returned score may be from the exact cosine
// similarity computed in float64: the float32 arithmetic of an index.
const scoreTolerance = 1e-3

// MinRecall is the recall@k an index must reach against exact search on
// the suite's clustered data set: approximate indexes may miss a little.
const MinRecall = 0.95

// RunIndexTests runs the rag.Index contract. newIndex must return a new,
// empty index for collections with dense vectors of dim components (0: no
// dense vectors, sparse only) each time it is called, and release it in
// t.Cleanup.
func RunIndexTests(t *testing.T, newIndex func(t *testing.T, dim int) rag.Index) {
	tests := []struct {
		name string
		run  func(t *testing.T, newIndex func(t *testing.T, dim int) rag.Index)
	}{
		{"EmptyIndex", testEmpty},
		{"RoundTrip", testRoundTrip},
		{"ScoresAreCosine", testScores},
		{"K", testK},
		{"MinSimilarity", testMinSimilarity},
		{"SourcesFilter", testSourcesFilter},
		{"UpsertReplacesByID", testUpsertReplaces},
		{"DeleteSource", testDeleteSource},
		{"Sources", testSources},
		{"BadInput", testBadInput},
		{"FailedUpsertWritesNothing", testAllOrNothing},
		{"ReplaceSource", testReplaceSource},
		{"RecallAgainstExact", testRecall},
		{"ConcurrentSearchAndUpsert", testConcurrent},
		{"SparseOnlyCollection", testSparseOnly},
		{"SparseScoresAreBM25", testSparseBM25},
		{"SparseNeedsASharedTerm", testSparseShared},
		{"SparseLengthNormalisation", testSparseLength},
		{"SparseMinRelevance", testSparseMinRelevance},
		{"SparseFilterKeepsCollectionStatistics", testSparseFilterStats},
		{"IDFFollowsAddsAndDeletes", testSparseIDFUpdates},
		{"HybridFusesByRRF", testHybridRRF},
		{"SeveralQueriesFuse", testSeveralQueries},
		{"CandidatesCutEachList", testCandidates},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, newIndex) })
	}
}

// chunk returns the i-th chunk of source with text.
func chunk(source string, i int, text string) rag.Chunk {
	return rag.NewChunk(source, "Title of "+source, i, text, map[string]string{"lang": "en", "topic": "test"})
}

// VectorsOf returns the vectors of chunks as the Ingester makes them: the
// term counts of their IndexText, and dense[i] (none if dense is nil).
func VectorsOf(chunks []rag.Chunk, dense [][]float32) []rag.Vectors {
	out := make([]rag.Vectors, len(chunks))
	for i, c := range chunks {
		out[i].Sparse = rag.TermCounts(rag.IndexText(c))
		if dense != nil {
			out[i].Dense = dense[i]
		}
	}
	return out
}

// upsert writes chunks with dense vectors (nil for none) and their term
// counts, then settles the index (settle).
func upsert(t *testing.T, x rag.Index, chunks []rag.Chunk, dense [][]float32) {
	t.Helper()
	if err := x.Upsert(t.Context(), chunks, VectorsOf(chunks, dense)); err != nil {
		t.Fatalf("Upsert %d chunks: %v", len(chunks), err)
	}
	settle(t, x)
}

// settle brings the BM25 weights of an index that stores them (a
// rag.Reweigher) up to date with its statistics, as the Ingester does
// after every Sync that changed something.
func settle(t *testing.T, x rag.Index) {
	t.Helper()
	if r, ok := x.(rag.Reweigher); ok {
		if _, err := r.Reweigh(t.Context()); err != nil {
			t.Fatalf("Reweigh: %v", err)
		}
	}
}

// find runs x.Search and checks what every result must satisfy: fused
// hits best first, at most K; as many lists as query vectors, sparse
// first, each best first and at most Candidates long; and fused scores
// that are the RRF sums of the lists.
func find(t *testing.T, x rag.Index, q rag.Query, opts rag.SearchOptions) rag.Result {
	t.Helper()
	res, err := x.Search(t.Context(), q, opts)
	if err != nil {
		t.Fatalf("Search(%+v): %v", opts, err)
	}
	k, cands, rrfK := cmpOr(opts.K, rag.DefaultK), 0, cmpOr(opts.RRFK, rag.DefaultRRFK)
	cands = cmpOr(opts.Candidates, k)
	if len(res.Hits) > k {
		t.Fatalf("Search(%+v): %d hits, want at most %d", opts, len(res.Hits), k)
	}
	if len(res.Lists) != len(q.Sparse)+len(q.Dense) {
		t.Fatalf("Search: %d lists for %d sparse and %d dense queries", len(res.Lists), len(q.Sparse), len(q.Dense))
	}
	want := map[string]float64{}
	for i, l := range res.Lists {
		kind := rag.KindSparse
		if i >= len(q.Sparse) {
			kind = rag.KindDense
		}
		if l.Kind != kind || len(l.Hits) > cands {
			t.Fatalf("Search: list %d is %q with %d hits, want %q with at most %d", i, l.Kind, len(l.Hits), kind, cands)
		}
		for j, h := range l.Hits {
			if j > 0 && h.Score > l.Hits[j-1].Score+1e-6 {
				t.Fatalf("Search: list %d hit %d scores %v above hit %d's %v: want descending scores", i, j, h.Score, j-1, l.Hits[j-1].Score)
			}
			want[h.ChunkID] += rag.RRFScore(j, rrfK)
		}
	}
	for i, h := range res.Hits {
		if i > 0 && h.Score > res.Hits[i-1].Score+1e-6 {
			t.Fatalf("Search: fused hit %d scores %v above hit %d's %v: want descending scores", i, h.Score, i-1, res.Hits[i-1].Score)
		}
		if math.Abs(h.Score-want[h.Chunk.ID]) > 1e-4 {
			t.Errorf("Search: fused hit %s scores %v, its lists' RRF sum is %v", h.Chunk.ID, h.Score, want[h.Chunk.ID])
		}
	}
	return res
}

func cmpOr(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// search runs a dense search for v and returns its list.
func search(t *testing.T, x rag.Index, v []float32, opts rag.SearchOptions) []rag.ListHit {
	t.Helper()
	res := find(t, x, rag.Query{Dense: [][]float32{v}}, opts)
	if len(res.Hits) != min(len(res.Lists[0].Hits), cmpOr(opts.K, rag.DefaultK)) {
		t.Fatalf("Search: %d fused hits from one list of %d", len(res.Hits), len(res.Lists[0].Hits))
	}
	for i, h := range res.Hits {
		if h.Chunk.ID != res.Lists[0].Hits[i].ChunkID {
			t.Fatalf("Search: fused hit %d is %s, the only list's is %s", i, h.Chunk.ID, res.Lists[0].Hits[i].ChunkID)
		}
	}
	return res.Lists[0].Hits
}

func ids(hits []rag.ListHit) []string {
	out := make([]string, len(hits))
	for i, h := range hits {
		out[i] = h.ChunkID
	}
	return out
}

func hitIDs(hits []rag.Hit) []string {
	out := make([]string, len(hits))
	for i, h := range hits {
		out[i] = h.Chunk.ID
	}
	return out
}

func sortedSources(t *testing.T, x rag.Index) map[string][]string {
	t.Helper()
	got, err := x.Sources(t.Context())
	if err != nil {
		t.Fatalf("Sources: %v", err)
	}
	for _, v := range got {
		sort.Strings(v)
	}
	return got
}

func idsOf(chunks ...rag.Chunk) []string {
	out := make([]string, len(chunks))
	for i, c := range chunks {
		out[i] = c.ID
	}
	sort.Strings(out)
	return out
}

// axis returns the unit vector along axis i, scaled by s.
func axis(dim, i int, s float32) []float32 {
	v := make([]float32, dim)
	v[i] = s
	return v
}

func testEmpty(t *testing.T, newIndex func(*testing.T, int) rag.Index) {
	x := newIndex(t, 8)
	if x.Name() == "" {
		t.Errorf("Name() is empty")
	}
	res := find(t, x, rag.Query{Dense: [][]float32{axis(8, 0, 1)}, Sparse: []rag.SparseVector{rag.QueryTerms("rent support")}}, rag.SearchOptions{})
	if len(res.Hits) != 0 || len(res.Lists[0].Hits) != 0 || len(res.Lists[1].Hits) != 0 {
		t.Errorf("Search on an empty index = %+v, want no hits", res)
	}
	if got := sortedSources(t, x); len(got) != 0 {
		t.Errorf("Sources on an empty index = %v, want none", got)
	}
	if err := x.DeleteSource(t.Context(), "never-ingested.md"); err != nil {
		t.Errorf("DeleteSource of an unknown source: %v, want nil", err)
	}
}

func testRoundTrip(t *testing.T, newIndex func(*testing.T, int) rag.Index) {
	x := newIndex(t, 8)
	chunks := []rag.Chunk{
		rag.NewChunk("housing/youth-rent-support.md", "청년 월세 지원", 0, "청년 월세 특별지원은 월 최대 20만 원을 지원합니다.", map[string]string{"lang": "ko", "topic": "housing", rag.MetaSection: "지원 내용"}),
		rag.NewChunk("housing/youth-rent-support.md", "청년 월세 지원", 1, "신청은 복지로에서 합니다.", map[string]string{"lang": "ko", "topic": "housing"}),
		rag.NewChunk("faq/en.txt", "en", 0, "Plain English text, no metadata.", nil),
	}
	vectors := [][]float32{axis(8, 0, 1), axis(8, 1, 2), axis(8, 2, 0.5)}
	upsert(t, x, chunks, vectors)
	for i, c := range chunks {
		res := find(t, x, rag.Query{Dense: [][]float32{vectors[i]}}, rag.SearchOptions{K: 1})
		if len(res.Hits) != 1 {
			t.Fatalf("Search for chunk %d's own vector: %d hits, want 1", i, len(res.Hits))
		}
		if diff := chunkDiff(c, res.Hits[0].Chunk); diff != "" {
			t.Errorf("chunk %d came back changed (-stored +returned):\n%s", i, diff)
		}
		if got := res.Lists[0].Hits[0].Score; math.Abs(got-1) > scoreTolerance {
			t.Errorf("chunk %d: score for its own vector = %v, want 1", i, got)
		}
		// Its own text finds it too, and first.
		res = find(t, x, rag.Query{Sparse: []rag.SparseVector{rag.QueryTerms(rag.IndexText(c))}}, rag.SearchOptions{K: 1})
		if len(res.Hits) != 1 || res.Hits[0].Chunk.ID != c.ID {
			t.Errorf("sparse search for chunk %d's own text = %v, want [%s]", i, hitIDs(res.Hits), c.ID)
		}
	}
}

func testScores(t *testing.T, newIndex func(*testing.T, int) rag.Index) {
	x := newIndex(t, 4)
	a, b, c, d := chunk("s.md", 0, "a"), chunk("s.md", 1, "b"), chunk("s.md", 2, "c"), chunk("s.md", 3, "d")
	// Lengths differ on purpose: scores are cosines, not dot products.
	upsert(t, x, []rag.Chunk{a, b, c, d}, [][]float32{{3, 0, 0, 0}, {1, 1, 0, 0}, {0, 0.2, 0, 0}, {-5, 0, 0, 0}})
	hits := search(t, x, []float32{2, 0, 0, 0}, rag.SearchOptions{K: 10, MinSimilarity: -1})
	type scored struct {
		ID    string
		Score float64
	}
	var got []scored
	for _, h := range hits {
		got = append(got, scored{h.ChunkID, h.Score})
	}
	want := []scored{{a.ID, 1}, {b.ID, math.Sqrt2 / 2}, {c.ID, 0}, {d.ID, -1}}
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		ok = got[i].ID == want[i].ID && math.Abs(got[i].Score-want[i].Score) <= scoreTolerance
	}
	if !ok {
		t.Errorf("hits:\n got %+v\nwant %+v", got, want)
	}
}

// spread stores n chunks of one source whose cosine to axis 0 falls
// with i, and returns them.
func spread(t *testing.T, x rag.Index, dim, n int, source string) []rag.Chunk {
	t.Helper()
	var chunks []rag.Chunk
	var vectors [][]float32
	for i := range n {
		chunks = append(chunks, chunk(source, i, fmt.Sprintf("chunk %d of %s", i, source)))
		v := axis(dim, 0, 1)
		v[1] = float32(i) / float32(n) * 3 // angle grows with i
		vectors = append(vectors, v)
	}
	upsert(t, x, chunks, vectors)
	return chunks
}

func testK(t *testing.T, newIndex func(*testing.T, int) rag.Index) {
	x := newIndex(t, 4)
	chunks := spread(t, x, 4, 10, "k.md")
	q := axis(4, 0, 1)
	for _, tt := range []struct {
		k    int
		want []rag.Chunk
	}{
		{0, chunks[:rag.DefaultK]},
		{1, chunks[:1]},
		{3, chunks[:3]},
		{100, chunks},
	} {
		got := ids(search(t, x, q, rag.SearchOptions{K: tt.k}))
		want := make([]string, len(tt.want))
		for i, c := range tt.want {
			want[i] = c.ID
		}
		if diff := idsDiff(want, got); diff != "" {
			t.Errorf("K=%d: hit IDs (-want +got):\n%s", tt.k, diff)
		}
	}
}

func testMinSimilarity(t *testing.T, newIndex func(*testing.T, int) rag.Index) {
	x := newIndex(t, 4)
	a, b, c, d := chunk("m.md", 0, "a"), chunk("m.md", 1, "b"), chunk("m.md", 2, "c"), chunk("m.md", 3, "d")
	upsert(t, x, []rag.Chunk{a, b, c, d}, [][]float32{{1, 0, 0, 0}, {1, 1, 0, 0}, {-1, 0.1, 0, 0}, {0, 0, 1, 0}})
	q := axis(4, 0, 1)
	for _, tt := range []struct {
		min  float64
		want []string
	}{
		{0.9, []string{a.ID}},
		{0.5, []string{a.ID, b.ID}},
		{1, []string{a.ID}},             // a scores exactly 1: at least MinScore is kept
		{0, []string{a.ID, b.ID, d.ID}}, // the zero value drops negative scores, keeps d's 0
		{-1, []string{a.ID, b.ID, d.ID, c.ID}},
		{1.5, nil},
	} {
		got := ids(search(t, x, q, rag.SearchOptions{K: 10, MinSimilarity: tt.min}))
		if diff := idsDiff(tt.want, got); diff != "" {
			t.Errorf("MinSimilarity=%v: hit IDs (-want +got):\n%s", tt.min, diff)
		}
	}
}

func testSourcesFilter(t *testing.T, newIndex func(*testing.T, int) rag.Index) {
	x := newIndex(t, 4)
	a := spread(t, x, 4, 3, "a.md")
	b := spread(t, x, 4, 3, "b.md")
	c := spread(t, x, 4, 3, "c.md")
	for _, tt := range []struct {
		sources []string
		want    []string
	}{
		{[]string{"b.md"}, idsOf(b...)},
		{[]string{"a.md", "c.md"}, idsOf(append(slices.Clone(a), c...)...)},
		{[]string{"missing.md"}, nil},
		{nil, idsOf(append(append(slices.Clone(a), b...), c...)...)},
	} {
		// Both kinds of list: every chunk's text has "chunk" and "of".
		res := find(t, x, rag.Query{Dense: [][]float32{axis(4, 0, 1)}, Sparse: []rag.SparseVector{rag.QueryTerms("chunk")}},
			rag.SearchOptions{K: 20, Candidates: 20, MinRelevance: 0, Sources: tt.sources})
		for i, l := range res.Lists {
			got := ids(l.Hits)
			sort.Strings(got)
			if diff := idsDiff(tt.want, got); diff != "" {
				t.Errorf("Sources=%q, %s list: hit IDs (-want +got):\n%s", tt.sources, res.Lists[i].Kind, diff)
			}
		}
		got := hitIDs(res.Hits)
		sort.Strings(got)
		if diff := idsDiff(tt.want, got); diff != "" {
			t.Errorf("Sources=%q: fused hit IDs (-want +got):\n%s", tt.sources, diff)
		}
	}
}

func testUpsertReplaces(t *testing.T, newIndex func(*testing.T, int) rag.Index) {
	x := newIndex(t, 4)
	old := chunk("u.md", 0, "old text")
	other := chunk("u.md", 1, "other")
	upsert(t, x, []rag.Chunk{old, other}, [][]float32{{1, 0, 0, 0}, {0, 0, 1, 0}})
	updated := old
	updated.Text, updated.Title, updated.Metadata = "new wording", "New title", map[string]string{"lang": "ko"}
	upsert(t, x, []rag.Chunk{updated}, [][]float32{{0, 1, 0, 0}})

	hits := search(t, x, []float32{0, 1, 0, 0}, rag.SearchOptions{K: 10, MinSimilarity: -1})
	if len(hits) != 2 {
		t.Fatalf("after replacing a chunk by ID: %d hits, want 2 (no duplicate)", len(hits))
	}
	res := find(t, x, rag.Query{Dense: [][]float32{{0, 1, 0, 0}}}, rag.SearchOptions{K: 1})
	if diff := chunkDiff(updated, res.Hits[0].Chunk); diff != "" {
		t.Errorf("best hit is not the replaced chunk (-want +got):\n%s", diff)
	}
	if math.Abs(hits[0].Score-1) > scoreTolerance {
		t.Errorf("replaced chunk scores %v against its new vector, want 1 (old vector kept?)", hits[0].Score)
	}
	// Its old terms are gone, its new ones found.
	for _, tt := range []struct {
		query string
		want  []string
	}{{"old", nil}, {"wording", []string{updated.ID}}} {
		res := find(t, x, rag.Query{Sparse: []rag.SparseVector{rag.QueryTerms(tt.query)}}, rag.SearchOptions{K: 10})
		if diff := idsDiff(tt.want, hitIDs(res.Hits)); diff != "" {
			t.Errorf("sparse search for %q after the replace (-want +got):\n%s", tt.query, diff)
		}
	}
}

func testDeleteSource(t *testing.T, newIndex func(*testing.T, int) rag.Index) {
	x := newIndex(t, 4)
	spread(t, x, 4, 3, "gone.md")
	kept := spread(t, x, 4, 2, "kept.md")
	if err := x.DeleteSource(t.Context(), "gone.md"); err != nil {
		t.Fatalf("DeleteSource: %v", err)
	}
	got := ids(search(t, x, axis(4, 0, 1), rag.SearchOptions{K: 10}))
	sort.Strings(got)
	if diff := idsDiff(idsOf(kept...), got); diff != "" {
		t.Errorf("hits after DeleteSource (-want +got):\n%s", diff)
	}
	res := find(t, x, rag.Query{Sparse: []rag.SparseVector{rag.QueryTerms("gone")}}, rag.SearchOptions{K: 10})
	if len(res.Hits) != 0 {
		t.Errorf("sparse search for the deleted source's words = %v, want nothing", hitIDs(res.Hits))
	}
	if diff := sourcesDiff(map[string][]string{"kept.md": idsOf(kept...)}, sortedSources(t, x)); diff != "" {
		t.Errorf("Sources after DeleteSource (-want +got):\n%s", diff)
	}
	if err := x.DeleteSource(t.Context(), "gone.md"); err != nil {
		t.Errorf("second DeleteSource: %v, want nil", err)
	}
}

func testSources(t *testing.T, newIndex func(*testing.T, int) rag.Index) {
	x := newIndex(t, 4)
	a := spread(t, x, 4, 3, "dir/a.md")
	b := spread(t, x, 4, 1, "b.html")
	want := map[string][]string{"dir/a.md": idsOf(a...), "b.html": idsOf(b...)}
	if diff := sourcesDiff(want, sortedSources(t, x)); diff != "" {
		t.Errorf("Sources (-want +got):\n%s", diff)
	}
}
