package qdrant

import (
	"cmp"
	"math"
	"slices"

	qc "github.com/qdrant/go-client/qdrant"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// How the fake Qdrant answers queries: see fakeServer.

// scored is a point found by a query.
type scored struct {
	id    string
	score float32
}

// query runs one query of the Query API, with its prefetches if any.
func (c *fakeCollection) query(prefetch []*qc.PrefetchQuery, q *qc.Query, using string, filter *qc.Filter, threshold *float32, limit *uint64) ([]scored, error) {
	n := 10
	if limit != nil {
		n = int(*limit)
	}
	k, fusion := 2, false
	switch v := q.GetVariant().(type) {
	case *qc.Query_Rrf:
		fusion = true
		if v.Rrf.K != nil {
			k = int(v.Rrf.GetK())
		}
	case *qc.Query_Fusion:
		if v.Fusion != qc.Fusion_RRF {
			return nil, status.Error(codes.Unimplemented, "fake: RRF fusion only")
		}
		fusion = true
	}
	if fusion {
		if len(prefetch) == 0 {
			return nil, status.Error(codes.InvalidArgument, "Fusion queries need prefetches")
		}
		sums := map[string]float32{}
		for _, p := range prefetch {
			pf := p.GetFilter()
			if filter != nil {
				pf = &qc.Filter{Must: []*qc.Condition{qc.NewFilterAsCondition(filter)}}
				if p.GetFilter() != nil {
					pf.Must = append(pf.Must, qc.NewFilterAsCondition(p.GetFilter()))
				}
			}
			list, err := c.query(p.GetPrefetch(), p.GetQuery(), p.GetUsing(), pf, p.ScoreThreshold, p.Limit)
			if err != nil {
				return nil, err
			}
			for pos, s := range list {
				sums[s.id] += 1 / float32(pos+k)
			}
		}
		var out []scored
		for id, s := range sums {
			if threshold == nil || s >= *threshold { // a fusion's threshold is inclusive
				out = append(out, scored{id, s})
			}
		}
		return top(out, n), nil
	}
	if len(prefetch) > 0 {
		return nil, status.Error(codes.Unimplemented, "fake: prefetches only with fusion")
	}
	nearest := q.GetNearest()
	if nearest == nil {
		return nil, status.Error(codes.Unimplemented, "fake: nearest and fusion queries only")
	}
	var score func(p *fakePoint) (float32, bool)
	if sq := nearest.GetSparse(); sq != nil {
		params, ok := c.sparse[using]
		if !ok {
			return nil, status.Errorf(codes.InvalidArgument, "Wrong input: Not existing vector name error: %s", using)
		}
		weights := slices.Clone(sq.GetValues())
		if params.GetModifier() == qc.Modifier_Idf {
			docs, df := 0, map[uint32]int{}
			for _, p := range c.points {
				if s := p.sparse[using]; s != nil {
					docs++
					for _, i := range s.GetIndices() {
						df[i]++
					}
				}
			}
			for j, i := range sq.GetIndices() {
				d := float64(df[i])
				weights[j] *= float32(math.Log((float64(docs)-d+0.5)/(d+0.5) + 1))
			}
		}
		score = func(p *fakePoint) (float32, bool) {
			s := p.sparse[using]
			var sum float32
			shared := false
			for j, i := range sq.GetIndices() {
				if k, ok := slices.BinarySearch(s.GetIndices(), i); ok {
					shared = true
					sum += weights[j] * s.GetValues()[k]
				}
			}
			return sum, shared
		}
	} else {
		params := c.denseParams(using)
		if params == nil {
			return nil, status.Errorf(codes.InvalidArgument, "Wrong input: Not existing vector name error: %s", using)
		}
		dq := nearest.GetDense().GetData()
		if uint64(len(dq)) != params.GetSize() {
			return nil, status.Errorf(codes.InvalidArgument, "Wrong input: Vector dimension error: expected dim: %d, got %d", params.GetSize(), len(dq))
		}
		dq = normalise(dq)
		score = func(p *fakePoint) (float32, bool) {
			v, ok := p.dense[using]
			if !ok {
				return 0, false
			}
			var dot float32
			for i := range dq {
				dot += dq[i] * v[i]
			}
			return dot, true
		}
	}
	var out []scored
	for id, p := range c.points {
		if filter != nil && !matches(filter, id, p) {
			continue
		}
		s, ok := score(p)
		if !ok || threshold != nil && s <= *threshold { // a search's threshold is exclusive
			continue
		}
		out = append(out, scored{id, s})
	}
	return top(out, n), nil
}

// top sorts by descending score (ties by ID, where Qdrant's order is
// arbitrary) and keeps n.
func top(out []scored, n int) []scored {
	slices.SortFunc(out, func(a, b scored) int { return cmp.Or(cmp.Compare(b.score, a.score), cmp.Compare(a.id, b.id)) })
	return out[:min(len(out), n)]
}

func (c *fakeCollection) present(out []scored, payload *qc.WithPayloadSelector, vectors *qc.WithVectorsSelector) []*qc.ScoredPoint {
	res := make([]*qc.ScoredPoint, len(out))
	for i, s := range out {
		p := c.points[s.id]
		res[i] = &qc.ScoredPoint{Id: qc.NewIDUUID(s.id), Score: s.score, Payload: selectPayload(payload, p.payload), Vectors: selectVectors(vectors, p)}
	}
	return res
}

func selectPayload(sel *qc.WithPayloadSelector, p map[string]*qc.Value) map[string]*qc.Value {
	if fields := sel.GetInclude().GetFields(); len(fields) > 0 {
		out := map[string]*qc.Value{}
		for _, f := range fields {
			if v, ok := p[f]; ok {
				out[f] = v
			}
		}
		return out
	}
	if sel.GetEnable() {
		return p
	}
	return nil
}

// selectVectors returns a point's vectors as the server sends them: the
// oneof form, named.
func selectVectors(sel *qc.WithVectorsSelector, p *fakePoint) *qc.VectorsOutput {
	want := func(string) bool { return sel.GetEnable() }
	if names := sel.GetInclude().GetNames(); len(names) > 0 {
		want = func(n string) bool { return slices.Contains(names, n) }
	}
	out := map[string]*qc.VectorOutput{}
	for name, d := range p.dense {
		if want(name) {
			out[name] = &qc.VectorOutput{Vector: &qc.VectorOutput_Dense{Dense: &qc.DenseVector{Data: d}}}
		}
	}
	for name, s := range p.sparse {
		if want(name) {
			out[name] = &qc.VectorOutput{Vector: &qc.VectorOutput_Sparse{Sparse: s}}
		}
	}
	if len(out) == 0 {
		return nil
	}
	return &qc.VectorsOutput{VectorsOptions: &qc.VectorsOutput_Vectors{Vectors: &qc.NamedVectorsOutput{Vectors: out}}}
}

// matches evaluates the filter conditions the adapter uses.
func matches(f *qc.Filter, id string, p *fakePoint) bool {
	for _, c := range f.GetMust() {
		if !cond(c, id, p) {
			return false
		}
	}
	for _, c := range f.GetMustNot() {
		if cond(c, id, p) {
			return false
		}
	}
	if len(f.GetShould()) > 0 {
		for _, c := range f.GetShould() {
			if cond(c, id, p) {
				return true
			}
		}
		return false
	}
	return true
}

func cond(c *qc.Condition, id string, p *fakePoint) bool {
	if h := c.GetHasId(); h != nil {
		for _, want := range h.GetHasId() {
			if want.GetUuid() == id {
				return true
			}
		}
		return false
	}
	if name := c.GetHasVector(); name != nil {
		_, dense := p.dense[name.GetHasVector()]
		_, sparse := p.sparse[name.GetHasVector()]
		return dense || sparse
	}
	if f := c.GetFilter(); f != nil {
		return matches(f, id, p)
	}
	fc := c.GetField()
	if fc == nil {
		panic("fake qdrant: unsupported condition " + c.String())
	}
	v := p.payload[fc.GetKey()]
	if r := fc.GetRange(); r != nil {
		var x float64
		switch k := v.GetKind().(type) {
		case *qc.Value_DoubleValue:
			x = k.DoubleValue
		case *qc.Value_IntegerValue:
			x = float64(k.IntegerValue)
		default:
			return false // not a number: no range matches
		}
		return (r.Lt == nil || x < r.GetLt()) && (r.Gt == nil || x > r.GetGt()) &&
			(r.Lte == nil || x <= r.GetLte()) && (r.Gte == nil || x >= r.GetGte())
	}
	got := v.GetStringValue()
	if kws := fc.GetMatch().GetKeywords(); kws != nil {
		return slices.Contains(kws.GetStrings(), got)
	}
	return got == fc.GetMatch().GetKeyword()
}
