package vecindex

import (
	"math"
	"slices"

	"github.com/parleychat/parley/domain/rag"
)

// searchDense returns the dense list for query q (any length): the
// Candidates best chunks by cosine similarity with at least MinSimilarity,
// best first, ties by chunk ID. It runs under the read lock.
func (x *Index) searchDense(q []float32, opts rag.SearchOptions, allowed []bool) []rag.ListHit {
	q = rag.Normalize(q)
	var cands []candidate
	if x.quantised {
		cands = x.scanInt8(q, max(opts.Candidates*x.rescore, minCandidates), allowed)
	} else {
		cands = x.scanF32(q, opts.Candidates, allowed)
	}
	hits := make([]rag.ListHit, 0, min(len(cands), opts.Candidates))
	for _, c := range cands {
		score := float64(dotF32(q, x.f32[int(c.slot)*x.dim:]))
		if score < opts.MinSimilarity {
			continue
		}
		ch := &x.chunks[c.slot]
		hits = append(hits, rag.ListHit{ChunkID: ch.ID, Source: ch.Source, Score: score})
	}
	return best(hits, opts.Candidates)
}

// best sorts hits best first, ties by chunk ID, and keeps n.
func best(hits []rag.ListHit, n int) []rag.ListHit {
	slices.SortFunc(hits, func(a, b rag.ListHit) int {
		if a.Score != b.Score {
			if a.Score > b.Score {
				return -1
			}
			return 1
		}
		switch {
		case a.ChunkID < b.ChunkID:
			return -1
		case a.ChunkID > b.ChunkID:
			return 1
		}
		return 0
	})
	return hits[:min(len(hits), n)]
}

// scanInt8 returns the n best slots by quantised score.
func (x *Index) scanInt8(q []float32, n int, allowed []bool) []candidate {
	var maxAbs float32
	for _, c := range q {
		maxAbs = max(maxAbs, abs32(c))
	}
	// The int32 sum of stride products of at most 127×limit must not
	// overflow: limit is 4095 (12 bits) unless the dimension is huge.
	limit := min(4095, math.MaxInt32/(127*x.stride))
	qq := make([]int16, x.stride)
	for i, c := range q {
		qq[i] = int16(math.Round(float64(c / maxAbs * float32(limit))))
	}
	top := topN{n: n}
	var dots [blockSize]int32
	total := len(x.chunks)
	for start := 0; start < total; start += blockSize {
		end := min(start+blockSize, total)
		out := dots[:end-start]
		dotsInt8(qq, x.q8[start*x.stride:end*x.stride], out)
		for i, d := range out {
			s := start + i
			if allowed != nil && !allowed[x.src[s]] {
				continue
			}
			top.push(float32(d)*x.scale[s], int32(s))
		}
	}
	return top.h
}

// scanF32 returns the n best slots by exact score.
func (x *Index) scanF32(q []float32, n int, allowed []bool) []candidate {
	top := topN{n: n}
	for s := range x.chunks {
		if allowed != nil && !allowed[x.src[s]] {
			continue
		}
		top.push(dotF32(q, x.f32[s*x.dim:]), int32(s))
	}
	return top.h
}

func abs32(f float32) float32 { return math.Float32frombits(math.Float32bits(f) &^ (1 << 31)) }

type candidate struct {
	score float32
	slot  int32
}

// topN keeps the n highest-scoring candidates in a min-heap.
type topN struct {
	n int
	h []candidate
}

func (t *topN) push(score float32, slot int32) {
	if len(t.h) < t.n {
		t.h = append(t.h, candidate{score, slot})
		for i := len(t.h) - 1; i > 0; {
			p := (i - 1) / 2
			if t.h[p].score <= t.h[i].score {
				break
			}
			t.h[p], t.h[i] = t.h[i], t.h[p]
			i = p
		}
		return
	}
	if score <= t.h[0].score {
		return
	}
	t.h[0] = candidate{score, slot}
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(t.h) && t.h[l].score < t.h[m].score {
			m = l
		}
		if r < len(t.h) && t.h[r].score < t.h[m].score {
			m = r
		}
		if m == i {
			return
		}
		t.h[i], t.h[m] = t.h[m], t.h[i]
		i = m
	}
}
