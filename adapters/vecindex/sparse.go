package vecindex

import (
	"container/heap"
	"slices"
	"sync"

	"github.com/parleychat/parley/domain/rag"
)

// posting lists the slots holding one term, with the term's count in each,
// in no particular order.
type posting struct {
	slots []int32
	tfs   []float32
}

// sparse is the index's inverted index and the collection statistics
// BM25 needs, kept up to date by every write: chunks with at least one
// term, and the sum of their lengths.
type sparse struct {
	terms  [][]uint32 // each slot's term indices, ascending
	length []float32  // each slot's length: the sum of its term counts
	post   map[uint32]*posting
	docs   int
	total  float64
	accums sync.Pool // *accum
}

// accum holds one sparse search's per-slot scores.
type accum struct {
	scores  []float32
	touched []int32
}

func newSparse() sparse { return sparse{post: map[uint32]*posting{}} }

// addSlot appends an empty slot.
func (sp *sparse) addSlot() {
	sp.terms = append(sp.terms, nil)
	sp.length = append(sp.length, 0)
}

// dropLastSlot removes the last slot, whose terms must have been removed.
func (sp *sparse) dropLastSlot() {
	sp.terms = sp.terms[:len(sp.terms)-1]
	sp.length = sp.length[:len(sp.length)-1]
}

// addTerms gives slot s, which holds none, the terms of v.
func (sp *sparse) addTerms(s int32, v rag.SparseVector) {
	if v.Len() == 0 {
		return
	}
	sp.terms[s] = slices.Clone(v.Indices)
	sp.length[s] = float32(v.Length())
	sp.docs++
	sp.total += float64(sp.length[s])
	for i, t := range v.Indices {
		p := sp.post[t]
		if p == nil {
			p = &posting{}
			sp.post[t] = p
		}
		p.slots = append(p.slots, s)
		p.tfs = append(p.tfs, v.Values[i])
	}
}

// removeTerms takes slot s's terms out of the postings and statistics.
func (sp *sparse) removeTerms(s int32) {
	if len(sp.terms[s]) == 0 {
		return
	}
	for _, t := range sp.terms[s] {
		p := sp.post[t]
		i := slices.Index(p.slots, s)
		last := len(p.slots) - 1
		p.slots[i], p.tfs[i] = p.slots[last], p.tfs[last]
		p.slots, p.tfs = p.slots[:last], p.tfs[:last]
		if last == 0 {
			delete(sp.post, t)
		}
	}
	sp.docs--
	sp.total -= float64(sp.length[s])
	if sp.docs == 0 {
		sp.total = 0 // no rounding left behind
	}
	sp.terms[s], sp.length[s] = nil, 0
}

// moveSlot renames slot from, whose place is being taken over, to to,
// which holds no terms.
func (sp *sparse) moveSlot(from, to int32) {
	for _, t := range sp.terms[from] {
		p := sp.post[t]
		p.slots[slices.Index(p.slots, from)] = to
	}
	sp.terms[to], sp.length[to] = sp.terms[from], sp.length[from]
	sp.terms[from], sp.length[from] = nil, 0
}

// searchSparse returns the sparse list for query weights v: the
// Candidates best chunks by BM25 with the whole collection's statistics,
// scored as a share of MaxScore and at least MinRelevance, best first,
// ties by chunk ID. It runs under the read lock.
func (x *Index) searchSparse(v rag.SparseVector, opts rag.SearchOptions, allowed []bool) []rag.ListHit {
	sp := &x.sparse
	bm := rag.DefaultBM25
	idf := make([]float64, v.Len())
	for i, t := range v.Indices {
		df := 0
		if p := sp.post[t]; p != nil {
			df = len(p.slots)
		}
		idf[i] = rag.IDF(sp.docs, df)
	}
	maxScore := bm.MaxScore(v.Values, idf)
	if sp.docs == 0 || maxScore <= 0 {
		return nil
	}
	avg := float32(sp.total / float64(sp.docs))
	k1, b := float32(bm.K1), float32(bm.B)

	a, _ := sp.accums.Get().(*accum)
	if a == nil {
		a = &accum{}
	}
	if len(a.scores) < len(x.chunks) {
		a.scores = make([]float32, len(x.chunks))
	}
	scores, touched := a.scores, a.touched[:0]
	for i, t := range v.Indices {
		p := sp.post[t]
		if p == nil {
			continue
		}
		w := v.Values[i] * float32(idf[i])
		for j, s := range p.slots {
			if allowed != nil && !allowed[x.src[s]] {
				continue
			}
			tf := p.tfs[j]
			norm := k1 * (1 - b + b*sp.length[s]/avg)
			if scores[s] == 0 {
				touched = append(touched, s)
			}
			scores[s] += w * tf * (k1 + 1) / (tf + norm)
		}
	}
	floor := float32(opts.MinRelevance * maxScore)
	top := &topHits{n: opts.Candidates, chunks: x.chunks}
	for _, s := range touched {
		if sc := scores[s]; sc >= floor {
			top.offer(sc, s)
		}
		scores[s] = 0
	}
	a.touched = touched
	sp.accums.Put(a)

	hits := make([]rag.ListHit, len(top.h))
	for i, c := range top.h {
		ch := &x.chunks[c.slot]
		hits[i] = rag.ListHit{ChunkID: ch.ID, Source: ch.Source, Score: float64(c.score) / maxScore}
	}
	return best(hits, opts.Candidates)
}

// topHits keeps the n best (score, slot) pairs, ties going to the lower
// chunk ID, in a min-heap whose root is the worst kept.
type topHits struct {
	n      int
	chunks []rag.Chunk
	h      []candidate
}

func (t *topHits) Len() int      { return len(t.h) }
func (t *topHits) Swap(i, j int) { t.h[i], t.h[j] = t.h[j], t.h[i] }
func (t *topHits) Less(i, j int) bool {
	return t.worse(t.h[i], t.h[j])
}
func (t *topHits) Push(x any) { t.h = append(t.h, x.(candidate)) }
func (t *topHits) Pop() any {
	last := t.h[len(t.h)-1]
	t.h = t.h[:len(t.h)-1]
	return last
}

// worse reports whether a ranks below b.
func (t *topHits) worse(a, b candidate) bool {
	if a.score != b.score {
		return a.score < b.score
	}
	return t.chunks[a.slot].ID > t.chunks[b.slot].ID
}

func (t *topHits) offer(score float32, slot int32) {
	c := candidate{score, slot}
	if len(t.h) < t.n {
		heap.Push(t, c)
		return
	}
	if t.worse(t.h[0], c) {
		t.h[0] = c
		heap.Fix(t, 0)
	}
}
