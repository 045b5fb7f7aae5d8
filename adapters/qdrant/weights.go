package qdrant

import (
	"context"
	"fmt"
	"math"
	"sync"

	qc "github.com/qdrant/go-client/qdrant"

	"github.com/parleychat/parley/domain/rag"
)

// reweighTolerance is how far the average chunk length a point's sparse
// weights were computed with may be from the collection's before Reweigh
// rewrites it: 0.5% moves a BM25 weight by at most about 0.2%.
const reweighTolerance = 0.005

// Qdrant applies IDF to sparse vectors (the idf modifier) but knows
// nothing of BM25's other half: term frequency saturation and length
// normalisation. So a point's sparse vector holds, for each term, its
// BM25 weight (rag.BM25.Weight) computed with the collection's average
// chunk length when it was written; its payload keeps its length
// ("tokens") and that average ("avg_tokens"). As documents are added and
// removed the average moves, and Reweigh rewrites the points written with
// an average more than reweighTolerance away from today's: the Ingester
// calls it after each Sync that changed something, so an unchanged corpus
// costs nothing.

// lengthStats is what this process knows of the collection's chunk
// lengths, for the weights of the points it writes: read from the
// collection at the first write, then counting this process's writes.
// Deletions are not counted; Reweigh reads the collection again.
type lengthStats struct {
	mu    sync.Mutex
	known bool
	n     int     // points with a sparse vector
	total float64 // their lengths' sum
}

// averageWith records vectors as written and returns the average chunk
// length with them, reading the collection's lengths the first time.
func (s *lengthStats) averageWith(ctx context.Context, x *Index, vectors []rag.Vectors) (float64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.known {
		n, total, err := x.scanLengths(ctx)
		if err != nil {
			return 0, err
		}
		s.n, s.total, s.known = n, total, true
	}
	for _, v := range vectors {
		if v.Sparse.Len() > 0 {
			s.n++
			s.total += v.Sparse.Length()
		}
	}
	if s.n == 0 {
		return 0, nil
	}
	return s.total / float64(s.n), nil
}

// set replaces what s knows with exact figures.
func (s *lengthStats) set(n int, total float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n, s.total, s.known = n, total, true
}

// scanLengths reads every point's length.
func (x *Index) scanLengths(ctx context.Context) (n int, total float64, err error) {
	err = x.scroll(ctx, "read chunk lengths", nil, qc.NewWithPayloadInclude(fieldTokens), nil, func(p *qc.RetrievedPoint) error {
		if l := number(p.GetPayload()[fieldTokens]); l > 0 {
			n++
			total += l
		}
		return nil
	})
	return n, total, err
}

// scroll calls each with every point matching filter (all if nil), page
// by page, with the payload and vectors selected.
func (x *Index) scroll(ctx context.Context, what string, filter *qc.Filter, payload *qc.WithPayloadSelector, vectors *qc.WithVectorsSelector, each func(*qc.RetrievedPoint) error) error {
	if vectors == nil {
		vectors = qc.NewWithVectors(false)
	}
	var offset *qc.PointId
	for {
		cctx, done, err := x.call(ctx)
		if err != nil {
			return x.fail(what, err)
		}
		resp, err := x.client.GetPointsClient().Scroll(cctx, &qc.ScrollPoints{
			CollectionName: x.cfg.Collection,
			Filter:         filter,
			Offset:         offset,
			Limit:          qc.PtrOf(uint32(scrollPage)),
			WithPayload:    payload,
			WithVectors:    vectors,
		}, x.recvLimit(scrollPage, vectors.GetEnable() || vectors.GetInclude() != nil))
		done()
		if err != nil {
			return x.fail(what, err)
		}
		points, next := resp.GetResult(), resp.GetNextPageOffset()
		for _, p := range points {
			if err := each(p); err != nil {
				return err
			}
		}
		if next == nil || len(points) == 0 {
			return nil
		}
		offset = next
	}
}

// point builds the point of chunk c: its dense vector normalised, its
// terms' BM25 weights for a collection averaging avg, and its payload.
func point(c rag.Chunk, v rag.Vectors, avg float64) (*qc.PointStruct, error) {
	length := v.Sparse.Length()
	payload, err := toPayload(c, length, avg)
	if err != nil {
		return nil, err
	}
	vecs := map[string]*qc.Vector{}
	if v.Dense != nil {
		vecs[vectorDense] = qc.NewVectorDense(rag.Normalize(v.Dense))
	}
	if v.Sparse.Len() > 0 {
		w := make([]float32, v.Sparse.Len())
		for i, tf := range v.Sparse.Values {
			w[i] = float32(rag.DefaultBM25.Weight(float64(tf), length, avg))
		}
		vecs[vectorSparse] = qc.NewVectorSparse(v.Sparse.Indices, w)
	}
	return &qc.PointStruct{Id: qc.NewIDUUID(c.ID), Vectors: qc.NewVectorsMap(vecs), Payload: payload}, nil
}

// termCounts recovers the term counts from a point's stored BM25 weights,
// inverting rag.BM25.Weight with the length and average in its payload.
func termCounts(weights *qc.SparseVector, length, avg float64) rag.SparseVector {
	p := rag.DefaultBM25
	norm := p.K1
	if avg > 0 {
		norm = p.K1 * (1 - p.B + p.B*length/avg)
	}
	v := rag.SparseVector{Indices: weights.GetIndices(), Values: make([]float32, len(weights.GetValues()))}
	for i, w := range weights.GetValues() {
		tf := float64(w) * norm / (p.K1 + 1 - float64(w))
		if r := math.Round(tf); math.Abs(tf-r) < 1e-3 {
			tf = r // counts are whole; keep rounding from piling up
		}
		v.Values[i] = float32(tf)
	}
	return v
}

// Reweigh implements rag.Reweigher: it reads every point's length, and
// rewrites the points whose sparse weights were computed with an average
// length more than reweighTolerance from today's.
func (x *Index) Reweigh(ctx context.Context) (int, error) {
	n, total, err := x.scanLengths(ctx)
	if err != nil {
		return 0, err
	}
	x.stats.set(n, total)
	if n == 0 {
		return 0, nil
	}
	avg := total / float64(n)
	stale := &qc.Filter{
		Must: []*qc.Condition{qc.NewRange(fieldTokens, &qc.Range{Gt: qc.PtrOf(0.0)})},
		Should: []*qc.Condition{
			qc.NewRange(fieldAvgTokens, &qc.Range{Lt: qc.PtrOf(avg * (1 - reweighTolerance))}),
			qc.NewRange(fieldAvgTokens, &qc.Range{Gt: qc.PtrOf(avg * (1 + reweighTolerance))}),
		},
	}
	var batch []*qc.PointStruct
	rewritten := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		cctx, done, err := x.call(ctx)
		if err != nil {
			return x.fail(fmt.Sprintf("reweigh %d points", len(batch)), err)
		}
		defer done()
		if _, err := x.client.Upsert(cctx, &qc.UpsertPoints{CollectionName: x.cfg.Collection, Wait: qc.PtrOf(true), Points: batch}); err != nil {
			return x.fail(fmt.Sprintf("reweigh %d points", len(batch)), err)
		}
		rewritten += len(batch)
		batch = batch[:0]
		return nil
	}
	err = x.scroll(ctx, "find points to reweigh", stale, qc.NewWithPayload(true), qc.NewWithVectors(true), func(p *qc.RetrievedPoint) error {
		c, err := fromPayload(p.GetId().GetUuid(), p.GetPayload())
		if err != nil {
			return fmt.Errorf("qdrant %s: reweigh point %s: %w", x.cfg.Collection, p.GetId().GetUuid(), err)
		}
		vs := p.GetVectors().GetVectors().GetVectors()
		var v rag.Vectors
		if d := vs[vectorDense]; d != nil {
			v.Dense = denseOf(d)
		}
		length, old := number(p.GetPayload()[fieldTokens]), number(p.GetPayload()[fieldAvgTokens])
		v.Sparse = termCounts(sparseOf(vs[vectorSparse]), length, old)
		pt, err := point(c, v, avg)
		if err != nil {
			return fmt.Errorf("qdrant %s: reweigh point %s: %w", x.cfg.Collection, c.ID, err)
		}
		if batch = append(batch, pt); len(batch) == x.cfg.BatchSize {
			return flush()
		}
		return nil
	})
	if err != nil {
		return rewritten, err
	}
	return rewritten, flush()
}

// denseOf and sparseOf read a stored vector, in the form the server sends
// now or in the deprecated one.
func denseOf(v *qc.VectorOutput) []float32 {
	if d := v.GetDense(); d != nil {
		return d.GetData()
	}
	return v.GetData() //nolint:staticcheck // older servers
}

func sparseOf(v *qc.VectorOutput) *qc.SparseVector {
	if s := v.GetSparse(); s != nil {
		return s
	}
	return &qc.SparseVector{Indices: v.GetIndices().GetData(), Values: v.GetData()} //nolint:staticcheck // older servers
}

// number reads a numeric payload value, which JSON may give back as an
// integer.
func number(v *qc.Value) float64 {
	if _, ok := v.GetKind().(*qc.Value_IntegerValue); ok {
		return float64(v.GetIntegerValue())
	}
	return v.GetDoubleValue()
}
