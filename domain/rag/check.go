package rag

import (
	"math"

	"github.com/parleychat/parley/domain"
)

// CheckUpsert reports the first problem with an Upsert of chunks and
// vectors into a collection of dimension dim (0: no dense vectors), as an
// EINVALID *domain.Error: different counts, an ID that is not a UUID or
// repeats in the batch, an empty Source, a dense vector where dim is 0 or
// missing or of the wrong length where it is not, one with a NaN or
// infinite component or no length at all (cosine similarity needs one),
// or a sparse vector that is not a valid term count vector (checkSparse).
func CheckUpsert(chunks []Chunk, vectors []Vectors, dim int) error {
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
		switch v := vectors[i].Dense; {
		case dim == 0 && v != nil:
			return domain.Errorf(domain.EINVALID, "upsert: chunk %s has a dense vector, but the collection has no dense embedder", c.ID)
		case dim > 0:
			if err := checkVector(v, dim); err != nil {
				return domain.Errorf(domain.EINVALID, "upsert: vector of chunk %s: %s", c.ID, err.Message)
			}
		}
		if err := checkSparse(vectors[i].Sparse); err != nil {
			return domain.Errorf(domain.EINVALID, "upsert: sparse vector of chunk %s: %s", c.ID, err.Message)
		}
	}
	return nil
}

// CheckSearch reports a problem with a Search for q in a collection of
// dimension dim as an EINVALID *domain.Error, and returns opts with K,
// Candidates and RRFK defaulted. A query needs at least one vector; dense
// vectors need a collection with a dense embedder.
func CheckSearch(q Query, dim int, opts SearchOptions) (SearchOptions, error) {
	if len(q.Sparse)+len(q.Dense) == 0 {
		return opts, domain.Errorf(domain.EINVALID, "search: the query has no vector")
	}
	for i, v := range q.Dense {
		if dim == 0 {
			return opts, domain.Errorf(domain.EINVALID, "search: a dense query, but the collection has no dense embedder")
		}
		if err := checkVector(v, dim); err != nil {
			return opts, domain.Errorf(domain.EINVALID, "search: dense query %d %s", i, err.Message)
		}
	}
	for i, v := range q.Sparse {
		if err := checkSparse(v); err != nil {
			return opts, domain.Errorf(domain.EINVALID, "search: sparse query %d: %s", i, err.Message)
		}
	}
	switch {
	case opts.K < 0:
		return opts, domain.Errorf(domain.EINVALID, "search: K %d is negative (0 means %d)", opts.K, DefaultK)
	case opts.K == 0:
		opts.K = DefaultK
	}
	switch {
	case opts.Candidates < 0:
		return opts, domain.Errorf(domain.EINVALID, "search: Candidates %d is negative (0 means K)", opts.Candidates)
	case opts.Candidates == 0:
		opts.Candidates = opts.K
	}
	switch {
	case opts.RRFK < 0:
		return opts, domain.Errorf(domain.EINVALID, "search: RRFK %d is negative (0 means %d)", opts.RRFK, DefaultRRFK)
	case opts.RRFK == 0:
		opts.RRFK = DefaultRRFK
	}
	if math.IsNaN(opts.MinSimilarity) || math.IsInf(opts.MinSimilarity, 0) {
		return opts, domain.Errorf(domain.EINVALID, "search: MinSimilarity %v is not a number", opts.MinSimilarity)
	}
	if math.IsNaN(opts.MinRelevance) || opts.MinRelevance < 0 || opts.MinRelevance > 1 {
		return opts, domain.Errorf(domain.EINVALID, "search: MinRelevance %v is not a share between 0 and 1", opts.MinRelevance)
	}
	return opts, nil
}

// checkSparse reports a sparse vector whose indices do not ascend
// strictly, whose value count differs, or with a value that is not a
// positive finite number. The empty vector is valid: a text without terms.
func checkSparse(v SparseVector) *domain.Error {
	if len(v.Indices) != len(v.Values) {
		return domain.Errorf(domain.EINVALID, "has %d indices but %d values", len(v.Indices), len(v.Values))
	}
	for i, x := range v.Values {
		if i > 0 && v.Indices[i] <= v.Indices[i-1] {
			return domain.Errorf(domain.EINVALID, "indices do not ascend strictly at %d", i)
		}
		if f := float64(x); math.IsNaN(f) || math.IsInf(f, 0) || f <= 0 {
			return domain.Errorf(domain.EINVALID, "value %d is %v, not a positive number", i, x)
		}
	}
	return nil
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
func CheckReplace(source string, chunks []Chunk, vectors []Vectors, dim int) error {
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
