package ragtest

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"

	"github.com/parleychat/parley/domain/rag"
)

var _ rag.Index = (*MemoryIndex)(nil)

// MemoryIndex is a rag.Index in memory that searches exactly and simply:
// it scores every stored chunk for every list, BM25 in float64 with the
// statistics of what it holds, and cosine similarity in float64. It is the
// reference the faster indexes are compared with, and safe for concurrent
// use.
type MemoryIndex struct {
	dim int

	mu     sync.RWMutex
	chunks map[string]stored
}

type stored struct {
	chunk  rag.Chunk
	dense  []float64 // unit length; nil without a dense embedder
	sparse map[uint32]float64
	length float64
}

// NewMemoryIndex returns an empty MemoryIndex for dense vectors of dim
// components; 0 for a collection without a dense embedder.
func NewMemoryIndex(dim int) *MemoryIndex {
	return &MemoryIndex{dim: dim, chunks: map[string]stored{}}
}

// Name returns "memory".
func (m *MemoryIndex) Name() string { return "memory" }

// Upsert implements rag.Index.
func (m *MemoryIndex) Upsert(ctx context.Context, chunks []rag.Chunk, vectors []rag.Vectors) error {
	if err := rag.CheckUpsert(chunks, vectors, m.dim); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, c := range chunks {
		s := stored{chunk: c, sparse: map[uint32]float64{}, length: vectors[i].Sparse.Length()}
		s.chunk.Metadata = maps.Clone(c.Metadata)
		if vectors[i].Dense != nil {
			s.dense = unit(vectors[i].Dense)
		}
		for j, t := range vectors[i].Sparse.Indices {
			s.sparse[t] = float64(vectors[i].Sparse.Values[j])
		}
		m.chunks[c.ID] = s
	}
	return nil
}

// DeleteSource implements rag.Index.
func (m *MemoryIndex) DeleteSource(ctx context.Context, source string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, s := range m.chunks {
		if s.chunk.Source == source {
			delete(m.chunks, id)
		}
	}
	return nil
}

// Sources implements rag.Index, with each source's IDs sorted.
func (m *MemoryIndex) Sources(ctx context.Context) (map[string][]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := map[string][]string{}
	for id, s := range m.chunks {
		out[s.chunk.Source] = append(out[s.chunk.Source], id)
	}
	for _, ids := range out {
		slices.Sort(ids)
	}
	return out, nil
}

// Search implements rag.Index.
func (m *MemoryIndex) Search(ctx context.Context, q rag.Query, opts rag.SearchOptions) (rag.Result, error) {
	opts, err := rag.CheckSearch(q, m.dim, opts)
	if err != nil {
		return rag.Result{}, err
	}
	if err := ctx.Err(); err != nil {
		return rag.Result{}, fmt.Errorf("search: %w", err)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	// Statistics of the whole collection, whatever the filter.
	var n int
	var total float64
	df := map[uint32]int{}
	for _, s := range m.chunks {
		if len(s.sparse) == 0 {
			continue
		}
		n++
		total += s.length
		for t := range s.sparse {
			df[t]++
		}
	}
	avg := 0.0
	if n > 0 {
		avg = total / float64(n)
	}
	allowed := func(s stored) bool { return len(opts.Sources) == 0 || slices.Contains(opts.Sources, s.chunk.Source) }
	var lists []rag.List
	for _, v := range q.Sparse {
		idf := make([]float64, v.Len())
		for i, t := range v.Indices {
			idf[i] = rag.IDF(n, df[t])
		}
		maxScore := rag.DefaultBM25.MaxScore(v.Values, idf)
		var hits []rag.ListHit
		for _, s := range m.chunks {
			if !allowed(s) {
				continue
			}
			var score float64
			shared := false
			for i, t := range v.Indices {
				if tf, ok := s.sparse[t]; ok {
					shared = true
					score += float64(v.Values[i]) * idf[i] * rag.DefaultBM25.Weight(tf, s.length, avg)
				}
			}
			if shared && score/maxScore >= opts.MinRelevance {
				hits = append(hits, rag.ListHit{ChunkID: s.chunk.ID, Source: s.chunk.Source, Score: score / maxScore})
			}
		}
		lists = append(lists, rag.List{Kind: rag.KindSparse, Hits: best(hits, opts.Candidates)})
	}
	for _, v := range q.Dense {
		u := unit(v)
		var hits []rag.ListHit
		for _, s := range m.chunks {
			if !allowed(s) {
				continue
			}
			var dot float64
			for i, x := range u {
				dot += x * s.dense[i]
			}
			if dot >= opts.MinSimilarity {
				hits = append(hits, rag.ListHit{ChunkID: s.chunk.ID, Source: s.chunk.Source, Score: dot})
			}
		}
		lists = append(lists, rag.List{Kind: rag.KindDense, Hits: best(hits, opts.Candidates)})
	}
	return rag.FuseLists(lists, opts, func(id string) rag.Chunk {
		c := m.chunks[id].chunk
		c.Metadata = maps.Clone(c.Metadata)
		return c
	}), nil
}

// best returns the n best hits, ties by chunk ID.
func best(hits []rag.ListHit, n int) []rag.ListHit {
	slices.SortFunc(hits, func(a, b rag.ListHit) int {
		return cmp.Or(cmp.Compare(b.Score, a.Score), cmp.Compare(a.ChunkID, b.ChunkID))
	})
	return hits[:min(len(hits), n)]
}

// unit returns v scaled to length 1, in float64; a zero vector stays zero.
func unit(v []float32) []float64 {
	out := make([]float64, len(v))
	var n float64
	for i, x := range v {
		out[i] = float64(x)
		n += out[i] * out[i]
	}
	if n > 0 {
		n = 1 / math.Sqrt(n)
		for i := range out {
			out[i] *= n
		}
	}
	return out
}
