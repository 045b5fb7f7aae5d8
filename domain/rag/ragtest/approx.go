package ragtest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"sync"
	"testing"

	"github.com/parleychat/parley/domain/rag"
)

// Approximate search, concurrency, and the helpers the contract's cases
// share.

// Clustered builds n vectors of dim components around clusters centres
// (unit Gaussian centres plus Gaussian noise of standard deviation noise
// per component), the shape real embeddings of topical text have. It is
// deterministic for a seed.
func Clustered(seed uint64, n, dim, clusters int, noise float64) [][]float32 {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	centres := make([][]float64, clusters)
	for i := range centres {
		centres[i] = make([]float64, dim)
		for j := range centres[i] {
			centres[i][j] = rng.NormFloat64()
		}
	}
	out := make([][]float32, n)
	for i := range out {
		c := centres[rng.IntN(clusters)]
		v := make([]float32, dim)
		for j := range v {
			v[j] = float32(c[j] + noise*rng.NormFloat64())
		}
		out[i] = v
	}
	return out
}

// ExactTopK returns the indexes of the k vectors with the highest cosine
// similarity to q, computed in float64, best first.
func ExactTopK(vectors [][]float32, q []float32, k int) []int {
	idx := make([]int, len(vectors))
	scores := make([]float64, len(vectors))
	for i, v := range vectors {
		idx[i] = i
		scores[i] = rag.Cosine(v, q)
	}
	sort.SliceStable(idx, func(a, b int) bool { return scores[idx[a]] > scores[idx[b]] })
	if k < len(idx) {
		idx = idx[:k]
	}
	return idx
}

func testRecall(t *testing.T, newIndex func(*testing.T, int) rag.Index) {
	const (
		dim     = 64
		n       = 1000
		queries = 50
		k       = 5
	)
	x := newIndex(t, dim)
	vectors := Clustered(1, n, dim, 20, 0.6)
	chunks := make([]rag.Chunk, n)
	byID := make(map[string]int, n)
	for i := range chunks {
		chunks[i] = chunk(fmt.Sprintf("doc-%d.md", i%37), i, fmt.Sprintf("text %d", i))
		byID[chunks[i].ID] = i
	}
	for i := 0; i < n; i += 250 {
		upsert(t, x, chunks[i:i+250], vectors[i:i+250])
	}
	qs := Clustered(2, queries, dim, 20, 0.8)
	found, total := 0, 0
	for qi, q := range qs {
		want := ExactTopK(vectors, q, k)
		hits := search(t, x, q, rag.SearchOptions{K: k, MinSimilarity: -1})
		if len(hits) != k {
			t.Fatalf("query %d: %d hits, want %d", qi, len(hits), k)
		}
		got := map[int]bool{}
		for _, h := range hits {
			i, ok := byID[h.ChunkID]
			if !ok {
				t.Fatalf("query %d: hit with unknown ID %s", qi, h.ChunkID)
			}
			got[i] = true
			if exact := rag.Cosine(vectors[i], q); math.Abs(exact-h.Score) > scoreTolerance {
				t.Errorf("query %d: chunk %d scores %v, exact cosine is %v", qi, i, h.Score, exact)
			}
		}
		for _, i := range want {
			if got[i] {
				found++
			}
			total++
		}
	}
	recall := float64(found) / float64(total)
	t.Logf("%s: recall@%d against exact search = %.3f over %d queries", x.Name(), k, recall, queries)
	if recall < MinRecall {
		t.Errorf("recall@%d = %.3f, want at least %.2f", k, recall, MinRecall)
	}
}

func testConcurrent(t *testing.T, newIndex func(*testing.T, int) rag.Index) {
	const dim = 16
	x := newIndex(t, dim)
	vectors := Clustered(3, 200, dim, 5, 0.5)
	chunks := make([]rag.Chunk, len(vectors))
	for i := range chunks {
		chunks[i] = chunk(fmt.Sprintf("c-%d.md", i%4), i, fmt.Sprintf("text %d", i))
	}
	upsert(t, x, chunks[:50], vectors[:50])
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 3 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				q := rag.Query{Dense: [][]float32{vectors[(w*31+i)%len(vectors)]}, Sparse: []rag.SparseVector{rag.QueryTerms(fmt.Sprint("text ", i))}}
				if _, err := x.Search(ctx, q, rag.SearchOptions{K: 3}); err != nil && ctx.Err() == nil {
					errs <- fmt.Errorf("searcher %d: %w", w, err)
					return
				}
			}
		})
	}
	for i := 50; i < len(chunks); i += 25 {
		if i == 100 {
			if err := x.DeleteSource(t.Context(), "c-1.md"); err != nil {
				t.Errorf("DeleteSource while searching: %v", err)
			}
		}
		if err := x.Upsert(t.Context(), chunks[i:i+25], VectorsOf(chunks[i:i+25], vectors[i:i+25])); err != nil {
			t.Errorf("Upsert while searching: %v", err)
		}
	}
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, context.Canceled) {
			t.Error(err)
		}
	}
	srcs := sortedSources(t, x)
	total := 0
	for _, v := range srcs {
		total += len(v)
	}
	// c-1.md lost its 25 chunks among the first 100 and kept the 25 written after.
	if want := len(chunks) - 25; total != want {
		t.Errorf("after concurrent writes: %d chunks, want %d", total, want)
	}
}

// chunkDiff describes how got differs from want, nil and empty metadata
// being equal; "" if they do not.
func chunkDiff(want, got rag.Chunk) string {
	if len(want.Metadata) == 0 {
		want.Metadata = nil
	}
	if len(got.Metadata) == 0 {
		got.Metadata = nil
	}
	if reflect.DeepEqual(want, got) {
		return ""
	}
	return fmt.Sprintf("-%+v\n+%+v", want, got)
}

// idsDiff is chunkDiff for lists of IDs, nil and empty being equal.
func idsDiff(want, got []string) string {
	if slices.Equal(want, got) {
		return ""
	}
	return fmt.Sprintf("-%q\n+%q", want, got)
}

// sourcesDiff is chunkDiff for Sources results with sorted ID lists.
func sourcesDiff(want, got map[string][]string) string {
	if len(want) == len(got) {
		same := true
		for k, v := range want {
			g, ok := got[k]
			same = same && ok && slices.Equal(v, g)
		}
		if same {
			return ""
		}
	}
	return fmt.Sprintf("-%q\n+%q", want, got)
}
