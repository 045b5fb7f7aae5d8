package rag

import (
	"math"

	"github.com/parleychat/parley/domain"
)

// CheckUpsert reports the first problem with an Upsert of chunks and
// vectors into an index of dimension dim, as an EINVALID *domain.Error:
// different counts, an ID that is not a UUID or repeats in the batch, an
// empty Source, a vector of the wrong length, or one with a NaN or
// infinite component or no length at all (cosine similarity needs one).
func CheckUpsert(chunks []Chunk, vectors [][]float32, dim int) error {
	if len(chunks) != len(vectors) {
		return domain.Errorf(domain.EINVALID, "upsert: %d chunks but %d vectors", len(chunks), len(vectors))
	}
	seen := make(map[string]struct{}, len(chunks))
	for i, c := range chunks {
		if _, err := domain.ParseUUID(c.ID); err != nil {
			return domain.Errorf(domain.EINVALID, "upsert: chunk %d of %q: ID %q is not a UUID (use ChunkID)", i, c.Source, c.ID)
		}
		if _, dup := seen[c.ID]; dup {
			return domain.Errorf(domain.EINVALID, "upsert: chunk ID %s appears twice in one batch", c.ID)
		}
		seen[c.ID] = struct{}{}
		if c.Source == "" {
			return domain.Errorf(domain.EINVALID, "upsert: chunk %s has no Source", c.ID)
		}
		if err := checkVector(vectors[i], dim); err != nil {
			return domain.Errorf(domain.EINVALID, "upsert: vector of chunk %s: %s", c.ID, err.Message)
		}
	}
	return nil
}

// CheckSearch reports a problem with a Search for vector in an index of
// dimension dim as an EINVALID *domain.Error, and returns opts with K
// defaulted.
func CheckSearch(vector []float32, dim int, opts SearchOptions) (SearchOptions, error) {
	if err := checkVector(vector, dim); err != nil {
		return opts, domain.Errorf(domain.EINVALID, "search: query %s", err.Message)
	}
	switch {
	case opts.K < 0:
		return opts, domain.Errorf(domain.EINVALID, "search: K %d is negative (0 means %d)", opts.K, DefaultK)
	case opts.K == 0:
		opts.K = DefaultK
	}
	if math.IsNaN(opts.MinScore) || math.IsInf(opts.MinScore, 0) {
		return opts, domain.Errorf(domain.EINVALID, "search: MinScore %v is not a number", opts.MinScore)
	}
	return opts, nil
}

func checkVector(v []float32, dim int) *domain.Error {
	if len(v) != dim {
		return domain.Errorf(domain.EINVALID, "has %d components, the index holds %d", len(v), dim)
	}
	var sum float64
	for i, x := range v {
		f := float64(x)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return domain.Errorf(domain.EINVALID, "component %d is %v", i, x)
		}
		sum += f * f
	}
	if sum == 0 {
		return domain.Errorf(domain.EINVALID, "is all zeros; cosine similarity needs a direction")
	}
	return nil
}

// Normalize returns v scaled to unit length, in a new slice. It returns v's
// zero vector unchanged (CheckUpsert and CheckSearch reject those).
func Normalize(v []float32) []float32 {
	var sum float64
	for _, x := range v {
		sum += float64(x) * float64(x)
	}
	out := make([]float32, len(v))
	if sum == 0 {
		return out
	}
	inv := 1 / math.Sqrt(sum)
	for i, x := range v {
		out[i] = float32(float64(x) * inv)
	}
	return out
}

// Cosine returns the cosine similarity of a and b, computed in float64; 0
// if either has no length. It panics if their lengths differ.
func Cosine(a, b []float32) float64 {
	if len(a) != len(b) {
		panic("rag.Cosine: vectors of different lengths")
	}
	var dot, na, nb float64
	for i := range a {
		x, y := float64(a[i]), float64(b[i])
		dot += x * y
		na += x * x
		nb += y * y
	}
	if na == 0 || nb == 0 {
		return 0
	}
	return dot / math.Sqrt(na*nb)
}

// CheckReplace is CheckUpsert for a SourceReplacer's ReplaceSource: it also
// requires every chunk to belong to source.
func CheckReplace(source string, chunks []Chunk, vectors [][]float32, dim int) error {
	if source == "" {
		return domain.Errorf(domain.EINVALID, "replace source: no source named")
	}
	for _, c := range chunks {
		if c.Source != source {
			return domain.Errorf(domain.EINVALID, "replace source %q: chunk %s belongs to %q", source, c.ID, c.Source)
		}
	}
	return CheckUpsert(chunks, vectors, dim)
}
