package ragtest

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/parleychat/parley/domain/rag"
)

var _ rag.Index = (*MemoryIndex)(nil)

// MemoryIndex is a rag.Index in memory that searches exactly: it compares
// the query with every stored vector by cosine similarity. It is safe for
// concurrent use.
type MemoryIndex struct {
	mu     sync.RWMutex
	dim    int // of the first vector stored; 0 while empty
	chunks map[string]stored
}

type stored struct {
	chunk rag.Chunk
	vec   []float64 // unit length, or all zeros
}

// NewMemoryIndex returns an empty MemoryIndex.
func NewMemoryIndex() *MemoryIndex { return &MemoryIndex{chunks: map[string]stored{}} }

// Name returns "memory".
func (m *MemoryIndex) Name() string { return "memory" }

// Upsert stores chunks with their vectors, replacing chunks with the same
// ID. Every vector must have the dimension of the first one ever stored.
func (m *MemoryIndex) Upsert(ctx context.Context, chunks []rag.Chunk, vectors [][]float32) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(chunks) != len(vectors) {
		return fmt.Errorf("memory index: upsert %d chunks with %d vectors", len(chunks), len(vectors))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	dim := m.dim
	for i, c := range chunks {
		if c.ID == "" {
			return fmt.Errorf("memory index: chunk %d of %q has no ID", c.Index, c.Source)
		}
		if dim == 0 {
			dim = len(vectors[i])
		}
		if len(vectors[i]) != dim || dim == 0 {
			return fmt.Errorf("memory index: chunk %s has %d dimensions, the index has %d", c.ID, len(vectors[i]), dim)
		}
	}
	m.dim = dim
	for i, c := range chunks {
		m.chunks[c.ID] = stored{chunk: c, vec: unit(vectors[i])}
	}
	return nil
}

// DeleteSource removes every chunk of source.
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

// Sources returns the chunk IDs of every source, sorted.
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

// Search returns the opts.K chunks most similar to vector with a score of
// at least opts.MinScore, best first, ties by chunk ID; only chunks of
// opts.Sources when it is not empty.
func (m *MemoryIndex) Search(ctx context.Context, vector []float32, opts rag.SearchOptions) ([]rag.Hit, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if opts.K <= 0 {
		return nil, fmt.Errorf("memory index: search needs K > 0, got %d", opts.K)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.dim != 0 && len(vector) != m.dim {
		return nil, fmt.Errorf("memory index: query has %d dimensions, the index has %d", len(vector), m.dim)
	}
	q := unit(vector)
	var hits []rag.Hit
	for _, s := range m.chunks {
		if len(opts.Sources) > 0 && !slices.Contains(opts.Sources, s.chunk.Source) {
			continue
		}
		var dot float64
		for i, x := range q {
			dot += x * s.vec[i]
		}
		if dot >= opts.MinScore {
			hits = append(hits, rag.Hit{Chunk: s.chunk, Score: dot})
		}
	}
	slices.SortFunc(hits, func(a, b rag.Hit) int {
		return cmp.Or(cmp.Compare(b.Score, a.Score), cmp.Compare(a.Chunk.ID, b.Chunk.ID))
	})
	return hits[:min(len(hits), opts.K)], nil
}

// unit returns v scaled to length 1, in float64; a zero vector stays zero.
func unit(v []float32) []float64 {
	out := make([]float64, len(v))
	var n float64
	for i, x := range v {
		out[i] = float64(x)
		n += out[i] * out[i]
	}
	if n = math.Sqrt(n); n > 0 {
		for i := range out {
			out[i] /= n
		}
	}
	return out
}
