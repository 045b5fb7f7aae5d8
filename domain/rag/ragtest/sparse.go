package ragtest

import (
	"fmt"
	"math"
	"testing"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/rag"
)

// The sparse and hybrid cases of the contract.

// plain returns the i-th chunk of source with text and no title or
// metadata, so that its indexed terms are exactly text's.
func plain(source string, i int, text string) rag.Chunk {
	return rag.NewChunk(source, "", i, text, nil)
}

// sparse runs a sparse-only search for text and returns its list.
func sparse(t *testing.T, x rag.Index, text string, opts rag.SearchOptions) []rag.ListHit {
	t.Helper()
	if opts.K == 0 {
		opts.K = 20
	}
	res := find(t, x, rag.Query{Sparse: []rag.SparseVector{rag.QueryTerms(text)}}, opts)
	return res.Lists[0].Hits
}

// scoresOf maps a list's chunk IDs to their scores.
func scoresOf(hits []rag.ListHit) map[string]float64 {
	m := map[string]float64{}
	for _, h := range hits {
		m[h.ChunkID] = h.Score
	}
	return m
}

func near(a, b float64) bool { return math.Abs(a-b) <= scoreTolerance }

func testSparseOnly(t *testing.T, newIndex func(*testing.T, int) rag.Index) {
	x := newIndex(t, 0)
	a, b := plain("a.md", 0, "youth rent grant"), plain("b.md", 0, "jeonse deposit loan")
	upsert(t, x, []rag.Chunk{a, b}, nil)
	if got := ids(sparse(t, x, "rent", rag.SearchOptions{})); len(got) != 1 || got[0] != a.ID {
		t.Errorf("sparse search for rent = %v, want [%s]", got, a.ID)
	}
	_, err := x.Search(t.Context(), rag.Query{Dense: [][]float32{{1}}}, rag.SearchOptions{})
	if code := domain.ErrorCode(err); code != domain.EINVALID {
		t.Errorf("dense search of a sparse-only collection: %v (code %q), want %q", err, code, domain.EINVALID)
	}
	c := []rag.Chunk{plain("c.md", 0, "x")}
	err = x.Upsert(t.Context(), c, []rag.Vectors{{Dense: []float32{1}, Sparse: rag.TermCounts("x")}})
	if code := domain.ErrorCode(err); code != domain.EINVALID {
		t.Errorf("Upsert of a dense vector into a sparse-only collection: %v (code %q), want %q", err, code, domain.EINVALID)
	}
}

// bm25 is the relevance of a chunk holding a query's single term tf times:
// Okapi BM25 with k1 1.2 and b 0.75, spelled out, over its maximum.
func bm25(tf, length, avgLength float64) float64 {
	const k1, b = 1.2, 0.75
	return tf * (k1 + 1) / (tf + k1*(1-b+b*length/avgLength)) / (k1 + 1)
}

func testSparseBM25(t *testing.T, newIndex func(*testing.T, int) rag.Index) {
	x := newIndex(t, 0)
	a := plain("f.md", 0, "apple")
	b := plain("f.md", 1, "apple banana")
	c := plain("f.md", 2, "cherry")
	d := plain("f.md", 3, "apple apple apple cherry cherry banana")
	upsert(t, x, []rag.Chunk{a, b, c, d}, nil)
	avg := (1 + 2 + 1 + 6) / 4.0
	got := scoresOf(sparse(t, x, "apple", rag.SearchOptions{}))
	want := map[string]float64{a.ID: bm25(1, 1, avg), b.ID: bm25(1, 2, avg), d.ID: bm25(3, 6, avg)}
	for id, w := range want {
		if g, ok := got[id]; !ok || !near(g, w) {
			t.Errorf("relevance of %s for apple = %v (found %v), want %v", id, g, ok, w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("apple found %d chunks, want %d: %v", len(got), len(want), got)
	}
	// Two terms: each weighs its IDF. cherry (in 2 of 4) and banana (in 2
	// of 4) weigh the same, so d, which has both, leads.
	idf := rag.IDF(4, 2)
	hits := sparse(t, x, "cherry banana", rag.SearchOptions{})
	wantD := (idf*bm25(2, 6, avg) + idf*bm25(1, 6, avg)) / (2 * idf)
	if len(hits) != 3 || hits[0].ChunkID != d.ID || !near(hits[0].Score, wantD) {
		t.Errorf("cherry banana = %+v, want %s first with %v", hits, d.ID, wantD)
	}
}

func testSparseShared(t *testing.T, newIndex func(*testing.T, int) rag.Index) {
	x := newIndex(t, 4)
	chunks := []rag.Chunk{plain("s.md", 0, "rent grant"), plain("s.md", 1, "student loan"), plain("s.md", 2, "청년 월세를 지원합니다")}
	upsert(t, x, chunks, [][]float32{{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}})
	for _, tt := range []struct {
		query string
		want  []string
	}{
		{"grant", []string{chunks[0].ID}},
		{"weather forecast", nil},
		{"월세 지원은", []string{chunks[2].ID}},
		{"청년의 월세", []string{chunks[2].ID}},
	} {
		got := ids(sparse(t, x, tt.query, rag.SearchOptions{K: 10, Candidates: 10}))
		if diff := idsDiff(tt.want, got); diff != "" {
			t.Errorf("sparse search for %q (-want +got):\n%s", tt.query, diff)
		}
	}
}

func testSparseLength(t *testing.T, newIndex func(*testing.T, int) rag.Index) {
	x := newIndex(t, 0)
	short := plain("l.md", 0, "rent support")
	long := plain("l.md", 1, "rent support for young tenants living away from their parents in cities")
	upsert(t, x, []rag.Chunk{long, short}, nil)
	hits := sparse(t, x, "rent", rag.SearchOptions{})
	if len(hits) != 2 || hits[0].ChunkID != short.ID || hits[0].Score <= hits[1].Score {
		t.Errorf("rent = %+v, want the short chunk %s first, strictly", hits, short.ID)
	}
}

func testSparseMinRelevance(t *testing.T, newIndex func(*testing.T, int) rag.Index) {
	x := newIndex(t, 0)
	all := plain("m.md", 0, "rent grant deposit")
	one := plain("m.md", 1, "rent")
	other := plain("m.md", 2, "loan interest")
	upsert(t, x, []rag.Chunk{all, one, other}, nil)
	full := scoresOf(sparse(t, x, "rent grant deposit", rag.SearchOptions{}))
	if len(full) != 2 {
		t.Fatalf("rent grant deposit found %v, want 2 chunks", full)
	}
	floor := (full[all.ID] + full[one.ID]) / 2
	got := ids(sparse(t, x, "rent grant deposit", rag.SearchOptions{MinRelevance: floor}))
	if diff := idsDiff([]string{all.ID}, got); diff != "" {
		t.Errorf("MinRelevance %v between the two (%v): (-want +got):\n%s", floor, full, diff)
	}
	if got := sparse(t, x, "rent grant deposit", rag.SearchOptions{MinRelevance: 1}); len(got) != 0 {
		t.Errorf("MinRelevance 1 kept %+v: no chunk reaches the saturated maximum", got)
	}
}

func testSparseFilterStats(t *testing.T, newIndex func(*testing.T, int) rag.Index) {
	x := newIndex(t, 0)
	var chunks []rag.Chunk
	for i := range 6 {
		chunks = append(chunks, plain(fmt.Sprintf("s%d.md", i%3), i, fmt.Sprintf("rent %s", []string{"grant", "loan", "deposit"}[i%3])))
	}
	upsert(t, x, chunks, nil)
	all := scoresOf(sparse(t, x, "rent grant", rag.SearchOptions{}))
	only := sparse(t, x, "rent grant", rag.SearchOptions{Sources: []string{"s1.md"}})
	if len(only) != 2 {
		t.Fatalf("filtered search found %+v, want the 2 chunks of s1.md", only)
	}
	for _, h := range only {
		if h.Source != "s1.md" || !near(h.Score, all[h.ChunkID]) {
			t.Errorf("filtered hit %+v: want a chunk of s1.md scoring as unfiltered (%v)", h, all[h.ChunkID])
		}
	}
}

func testSparseIDFUpdates(t *testing.T, newIndex func(*testing.T, int) rag.Index) {
	x := newIndex(t, 0)
	rent, loan := plain("base.md", 0, "rent"), plain("base.md", 1, "loan")
	upsert(t, x, []rag.Chunk{rent, loan}, nil)
	check := func(when string, n, dfRent int) {
		t.Helper()
		idfRent, idfLoan := rag.IDF(n, dfRent), rag.IDF(n, 1)
		max := (idfRent + idfLoan) * 2.2
		got := scoresOf(sparse(t, x, "rent loan", rag.SearchOptions{Sources: []string{"base.md"}}))
		// Both chunks are one term long, as long as the average.
		want := map[string]float64{rent.ID: idfRent / max, loan.ID: idfLoan / max}
		for id, w := range want {
			if !near(got[id], w) {
				t.Errorf("%s: relevance of %s = %v, want %v (n %d, df(rent) %d)", when, id, got[id], w, n, dfRent)
			}
		}
	}
	check("at first", 2, 1)
	var more []rag.Chunk
	for i := range 3 {
		more = append(more, plain("more.md", i, "rent"))
	}
	upsert(t, x, more, nil)
	check("after adding three chunks with rent", 5, 4)
	if err := x.DeleteSource(t.Context(), "more.md"); err != nil {
		t.Fatal(err)
	}
	settle(t, x)
	check("after deleting them", 2, 1)
}

func testHybridRRF(t *testing.T, newIndex func(*testing.T, int) rag.Index) {
	x := newIndex(t, 4)
	a := plain("h.md", 0, "rent grant lease")
	b := plain("h.md", 1, "rent rent")
	c := plain("h.md", 2, "grant")
	upsert(t, x, []rag.Chunk{a, b, c}, [][]float32{{1, 1, 0, 0}, {-0.1, 0, 1, 0}, {1, 0, 0, 0}})
	res := find(t, x, rag.Query{Sparse: []rag.SparseVector{rag.QueryTerms("rent grant lease")}, Dense: [][]float32{{1, 0.2, 0, 0}}},
		rag.SearchOptions{K: 10, Candidates: 10})
	if diff := idsDiff([]string{a.ID, b.ID, c.ID}, ids(res.Lists[0].Hits)); diff != "" {
		t.Errorf("sparse list (-want +got):\n%s", diff)
	}
	if diff := idsDiff([]string{c.ID, a.ID}, ids(res.Lists[1].Hits)); diff != "" {
		t.Errorf("dense list, b below similarity 0 (-want +got):\n%s", diff)
	}
	// a: 1/2 + 1/3; c: 1/4 + 1/2; b: 1/3 (k = 2).
	if diff := idsDiff([]string{a.ID, c.ID, b.ID}, hitIDs(res.Hits)); diff != "" {
		t.Errorf("fused order (-want +got):\n%s", diff)
	}
	if len(res.Hits) == 3 && !near(res.Hits[0].Score, 1.0/2+1.0/3) {
		t.Errorf("a's fused score = %v, want 1/2 + 1/3", res.Hits[0].Score)
	}
	// A larger k flattens the ranks' weights, and keeps the order here.
	res = find(t, x, rag.Query{Sparse: []rag.SparseVector{rag.QueryTerms("rent grant lease")}, Dense: [][]float32{{1, 0.2, 0, 0}}},
		rag.SearchOptions{K: 10, Candidates: 10, RRFK: 60})
	if len(res.Hits) != 3 || !near(res.Hits[0].Score, 1.0/60+1.0/61) {
		t.Errorf("with k 60: %+v, want a first with 1/60 + 1/61", res.Hits)
	}
}

func testSeveralQueries(t *testing.T, newIndex func(*testing.T, int) rag.Index) {
	x := newIndex(t, 0)
	rent := plain("q.md", 0, "월세 지원")
	loan := plain("q.md", 1, "student loan interest")
	upsert(t, x, []rag.Chunk{rent, loan}, nil)
	// The question in English and its rewrite in Korean: each finds one.
	res := find(t, x, rag.Query{Sparse: []rag.SparseVector{rag.QueryTerms("student loan"), rag.QueryTerms("월세 지원")}}, rag.SearchOptions{K: 10})
	got := hitIDs(res.Hits)
	if len(got) != 2 || len(res.Lists[0].Hits) != 1 || res.Lists[0].Hits[0].ChunkID != loan.ID || res.Lists[1].Hits[0].ChunkID != rent.ID {
		t.Errorf("two queries: lists %+v, fused %v; want each query's chunk in its list, both fused", res.Lists, got)
	}
}

func testCandidates(t *testing.T, newIndex func(*testing.T, int) rag.Index) {
	x := newIndex(t, 4)
	chunks := spread(t, x, 4, 10, "c.md") // every text has "chunk"
	res := find(t, x, rag.Query{Sparse: []rag.SparseVector{rag.QueryTerms("chunk")}, Dense: [][]float32{axis(4, 0, 1)}},
		rag.SearchOptions{K: 10, Candidates: 3})
	if len(res.Lists[0].Hits) != 3 || len(res.Lists[1].Hits) != 3 || len(res.Hits) > 6 {
		t.Errorf("Candidates 3: lists of %d and %d, %d fused; want 3, 3 and at most 6", len(res.Lists[0].Hits), len(res.Lists[1].Hits), len(res.Hits))
	}
	if dense := ids(res.Lists[1].Hits); len(dense) == 3 && dense[0] != chunks[0].ID {
		t.Errorf("dense list %v, want %s first", dense, chunks[0].ID)
	}
}
