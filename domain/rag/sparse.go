package rag

import (
	"cmp"
	"math"
	"slices"

	"github.com/parleychat/parley/domain/text"
)

// SparseEncoding names how texts become sparse vectors: the terms of
// text.Terms, each hashed by TermIndex. A collection records the encoding
// its chunks were written with; changing Terms or TermIndex changes the
// name, so that chunks are never scored against queries encoded
// differently.
const SparseEncoding = "terms-ko-en-1"

// GramWeight is a Gram term's weight in a query, against 1 for a Word
// term: a shared syllable pair says less than a shared word.
const GramWeight = 0.5

// TermIndex returns the sparse-vector index of a term: the 32-bit FNV-1a
// hash of its kind and its text. Distinct terms collide rarely (about one
// pair in a vocabulary of 90,000), and a collision only merges the two
// terms' statistics.
func TermIndex(kind text.TermKind, term string) uint32 {
	const offset, prime = 2166136261, 16777619
	h := uint32(offset)
	h = (h ^ uint32(kind)) * prime
	for i := 0; i < len(term); i++ {
		h = (h ^ uint32(term[i])) * prime
	}
	return h
}

// TermCounts returns s's term vector for indexing: how often each term of
// text.Terms occurs in s. Its sum is s's length for BM25.
func TermCounts(s string) SparseVector {
	counts := map[uint32]float32{}
	text.Terms(s, func(k text.TermKind, t string) { counts[TermIndex(k, t)]++ })
	return fromMap(counts)
}

// QueryTerms returns s's term vector for searching: each distinct term
// once, weighted 1 for a Word and GramWeight for a Gram.
func QueryTerms(s string) SparseVector {
	weights := map[uint32]float32{}
	text.Terms(s, func(k text.TermKind, t string) {
		w := float32(1)
		if k == text.Gram {
			w = GramWeight
		}
		weights[TermIndex(k, t)] = w
	})
	return fromMap(weights)
}

func fromMap(m map[uint32]float32) SparseVector {
	v := SparseVector{Indices: make([]uint32, 0, len(m)), Values: make([]float32, len(m))}
	for i := range m {
		v.Indices = append(v.Indices, i)
	}
	slices.Sort(v.Indices)
	for j, i := range v.Indices {
		v.Values[j] = m[i]
	}
	return v
}

// Length returns the sum of v's values: a chunk's length for BM25.
func (v SparseVector) Length() float64 {
	var n float64
	for _, x := range v.Values {
		n += float64(x)
	}
	return n
}

// BM25 holds the Okapi BM25 parameters every index scores sparse lists
// with: K1 saturates term frequency, B scales length normalisation.
type BM25 struct {
	K1, B float64
}

// DefaultBM25 are the parameters indexes use.
var DefaultBM25 = BM25{K1: 1.2, B: 0.75}

// IDF returns the inverse document frequency of a term found in df of n
// chunks, as Qdrant's idf modifier computes it: ln(1 + (n − df + 0.5) /
// (df + 0.5)). It is positive even for a term in every chunk.
func IDF(n, df int) float64 {
	return math.Log(1 + (float64(n)-float64(df)+0.5)/(float64(df)+0.5))
}

// Weight returns the BM25 weight of a term a chunk holds tf times, for a
// chunk of length length in a collection whose chunks average avgLength:
// tf·(K1+1) / (tf + K1·(1 − B + B·length/avgLength)). Multiplied by the
// term's IDF and its query weight, and summed over the query's terms, it
// gives the chunk's score.
func (p BM25) Weight(tf, length, avgLength float64) float64 {
	if tf <= 0 {
		return 0
	}
	norm := 1.0
	if avgLength > 0 {
		norm = 1 - p.B + p.B*length/avgLength
	}
	return tf * (p.K1 + 1) / (tf + p.K1*norm)
}

// MaxScore returns the most any chunk can score for a query whose terms
// have weights w and IDFs idf (in w's order): Σ w·idf·(K1+1), the limit of
// Weight as tf grows. SearchOptions.MinRelevance is a share of it.
func (p BM25) MaxScore(w []float32, idf []float64) float64 {
	var s float64
	for i, x := range w {
		s += float64(x) * idf[i] * (p.K1 + 1)
	}
	return s
}

// DefaultRRFK is SearchOptions.RRFK's default: Qdrant's default k.
const DefaultRRFK = 2

// RRFScore is the share of a fused score a list gives the hit at position
// pos (from 0): 1/(k + pos), as Qdrant computes it.
func RRFScore(pos, k int) float64 { return 1 / float64(k+pos) }

// Fused is one chunk of a fused list.
type Fused struct {
	ID    string
	Score float64
}

// FuseRRF fuses ranked lists of chunk IDs by Reciprocal Rank Fusion: each
// list adds RRFScore(position, k) to the score of each chunk in it, and
// chunks are ordered by descending sum, ties by ID.
func FuseRRF(lists [][]string, k int) []Fused {
	score := map[string]float64{}
	for _, l := range lists {
		for pos, id := range l {
			score[id] += RRFScore(pos, k)
		}
	}
	out := make([]Fused, 0, len(score))
	for id, s := range score {
		out = append(out, Fused{id, s})
	}
	slices.SortFunc(out, func(a, b Fused) int { return cmp.Or(cmp.Compare(b.Score, a.Score), cmp.Compare(a.ID, b.ID)) })
	return out
}

// FuseLists is the end of a Search in an index that fuses in process:
// it fuses lists (each already cut to Candidates) by RRF with opts.RRFK
// and returns the best opts.K fused hits, with their chunks from chunk.
func FuseLists(lists []List, opts SearchOptions, chunk func(id string) Chunk) Result {
	ids := make([][]string, len(lists))
	for i, l := range lists {
		ids[i] = make([]string, len(l.Hits))
		for j, h := range l.Hits {
			ids[i][j] = h.ChunkID
		}
	}
	fused := FuseRRF(ids, opts.RRFK)
	res := Result{Lists: lists, Hits: make([]Hit, 0, min(len(fused), opts.K))}
	for _, f := range fused[:min(len(fused), opts.K)] {
		res.Hits = append(res.Hits, Hit{Chunk: chunk(f.ID), Score: f.Score})
	}
	return res
}
