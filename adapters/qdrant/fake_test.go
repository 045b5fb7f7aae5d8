package qdrant

import (
	"cmp"
	"context"
	"math"
	"net"
	"slices"
	"sort"
	"sync"
	"testing"

	qc "github.com/qdrant/go-client/qdrant"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// fakeServer is an in-memory Qdrant speaking the gRPC API, implementing
// the calls the adapter makes with Qdrant's semantics for them (read in
// qdrant/qdrant's source):
//
//   - collections of named dense vectors (cosine: stored normalised) and
//     named sparse vectors, optionally with the idf modifier; a point may
//     lack any of them, and an unknown name or a wrong kind is refused;
//   - sparse vectors with repeated indices or mismatched lengths refused;
//   - nearest queries on the vector named by `using`: cosine for dense,
//     the dot product over shared indices for sparse (only points sharing
//     one are found), the query's weights first multiplied by
//     ln(1 + (n − df + 0.5)/(df + 0.5)) under the idf modifier, n being the
//     points holding the sparse vector and df those holding the index,
//     over the whole collection whatever the filter;
//   - a search's score_threshold keeps scores strictly above it (Qdrant's
//     check_threshold), a fusion's keeps those at or above it;
//   - prefetches fused by Reciprocal Rank Fusion: each adds
//     1/(position + k) (positions from 0, k 2 unless given) to its points;
//   - limits defaulting to 10, keyword, has_id, has_vector and range
//     filters, scrolling by ascending ID, exact counts.
//
// It lets the contract suite check the requests the adapter builds where
// no server runs.
type fakeServer struct {
	qc.UnimplementedQdrantServer

	mu          sync.Mutex
	collections map[string]*fakeCollection
	requests    int    // Upsert requests, for batch tests
	stop        func() // stops serving; idempotent
}

// fakeCollections and fakePoints serve the two services whose method
// names overlap.
type fakeCollections struct {
	qc.UnimplementedCollectionsServer
	*fakeServer
}

type fakePoints struct {
	qc.UnimplementedPointsServer
	*fakeServer
}

type fakeCollection struct {
	vectors *qc.VectorsConfig
	sparse  map[string]*qc.SparseVectorParams
	points  map[string]*fakePoint
}

type fakePoint struct {
	dense   map[string][]float32
	sparse  map[string]*qc.SparseVector
	payload map[string]*qc.Value
}

// startFake serves a fakeServer on a loopback port and returns it and its
// URL.
func startFake(t *testing.T) (*fakeServer, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeServer{collections: map[string]*fakeCollection{}}
	srv := grpc.NewServer()
	qc.RegisterQdrantServer(srv, f)
	qc.RegisterCollectionsServer(srv, fakeCollections{fakeServer: f})
	qc.RegisterPointsServer(srv, fakePoints{fakeServer: f})
	done := make(chan struct{})
	go func() { // owned: stopped and waited for in Cleanup
		defer close(done)
		_ = srv.Serve(lis)
	}()
	var once sync.Once
	f.stop = func() { once.Do(func() { srv.Stop(); <-done }) }
	t.Cleanup(f.stop)
	return f, "http://" + lis.Addr().String()
}

func (f *fakeServer) HealthCheck(context.Context, *qc.HealthCheckRequest) (*qc.HealthCheckReply, error) {
	return &qc.HealthCheckReply{Title: "fake qdrant", Version: "1.17.0"}, nil
}

func (f fakeCollections) CollectionExists(_ context.Context, r *qc.CollectionExistsRequest) (*qc.CollectionExistsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.collections[r.GetCollectionName()]
	return &qc.CollectionExistsResponse{Result: &qc.CollectionExists{Exists: ok}}, nil
}

func (f fakeCollections) Create(_ context.Context, r *qc.CreateCollection) (*qc.CollectionOperationResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.collections[r.GetCollectionName()]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "collection %s already exists", r.GetCollectionName())
	}
	if p := r.GetVectorsConfig().GetParams(); p != nil && p.GetSize() == 0 {
		return nil, status.Error(codes.InvalidArgument, "vector size must be positive")
	}
	for name, p := range r.GetVectorsConfig().GetParamsMap().GetMap() {
		if p.GetSize() == 0 {
			return nil, status.Errorf(codes.InvalidArgument, "vector %s: size must be positive", name)
		}
	}
	c := &fakeCollection{sparse: map[string]*qc.SparseVectorParams{}, points: map[string]*fakePoint{}}
	if r.GetVectorsConfig() != nil {
		c.vectors = proto.Clone(r.GetVectorsConfig()).(*qc.VectorsConfig)
	}
	for name, p := range r.GetSparseVectorsConfig().GetMap() {
		c.sparse[name] = proto.Clone(p).(*qc.SparseVectorParams)
	}
	f.collections[r.GetCollectionName()] = c
	return &qc.CollectionOperationResponse{Result: true}, nil
}

func (f fakeCollections) Delete(_ context.Context, r *qc.DeleteCollection) (*qc.CollectionOperationResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.collections[r.GetCollectionName()]
	delete(f.collections, r.GetCollectionName())
	return &qc.CollectionOperationResponse{Result: ok}, nil
}

func (f fakeCollections) Get(_ context.Context, r *qc.GetCollectionInfoRequest) (*qc.GetCollectionInfoResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.collection(r.GetCollectionName())
	if err != nil {
		return nil, err
	}
	params := &qc.CollectionParams{VectorsConfig: c.vectors}
	if len(c.sparse) > 0 {
		params.SparseVectorsConfig = &qc.SparseVectorConfig{Map: c.sparse}
	}
	return &qc.GetCollectionInfoResponse{Result: &qc.CollectionInfo{Config: &qc.CollectionConfig{Params: params}}}, nil
}

func (f *fakeServer) collection(name string) (*fakeCollection, error) {
	c, ok := f.collections[name]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "Collection `%s` doesn't exist!", name)
	}
	return c, nil
}

// denseParams returns the dense vector named name ("" for the unnamed one).
func (c *fakeCollection) denseParams(name string) *qc.VectorParams {
	if p := c.vectors.GetParams(); p != nil {
		if name == "" {
			return p
		}
		return nil
	}
	return c.vectors.GetParamsMap().GetMap()[name]
}

func (f fakePoints) CreateFieldIndex(_ context.Context, r *qc.CreateFieldIndexCollection) (*qc.PointsOperationResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.collection(r.GetCollectionName()); err != nil {
		return nil, err
	}
	return done(), nil
}

func done() *qc.PointsOperationResponse {
	return &qc.PointsOperationResponse{Result: &qc.UpdateResult{Status: qc.UpdateStatus_Completed}}
}

func (f fakePoints) Upsert(_ context.Context, r *qc.UpsertPoints) (*qc.PointsOperationResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	c, err := f.collection(r.GetCollectionName())
	if err != nil {
		return nil, err
	}
	points := map[string]*fakePoint{}
	for _, p := range r.GetPoints() { // all checked before any is written
		if p.GetId().GetUuid() == "" {
			return nil, status.Error(codes.InvalidArgument, "point ID must be a UUID here")
		}
		fp := &fakePoint{dense: map[string][]float32{}, sparse: map[string]*qc.SparseVector{}, payload: p.GetPayload()}
		vs := map[string]*qc.Vector{}
		if v := p.GetVectors().GetVector(); v != nil {
			vs[""] = v
		}
		for name, v := range p.GetVectors().GetVectors().GetVectors() {
			vs[name] = v
		}
		for name, v := range vs {
			if s := v.GetSparse(); s != nil {
				if _, ok := c.sparse[name]; !ok {
					return nil, status.Errorf(codes.InvalidArgument, "Wrong input: Not existing vector name error: %s", name)
				}
				if len(s.GetIndices()) != len(s.GetValues()) {
					return nil, status.Error(codes.InvalidArgument, "Validation error in JSON body: [indices: must be the same length as values array]")
				}
				sorted := slices.Clone(s.GetIndices())
				slices.Sort(sorted)
				if len(slices.Compact(sorted)) != len(s.GetIndices()) {
					return nil, status.Error(codes.InvalidArgument, "Validation error in JSON body: [indices: must be unique]")
				}
				fp.sparse[name] = sortSparse(s)
				continue
			}
			params := c.denseParams(name)
			if params == nil {
				return nil, status.Errorf(codes.InvalidArgument, "Wrong input: Not existing vector name error: %s", name)
			}
			d := v.GetDense().GetData()
			if d == nil {
				d = v.GetData() //nolint:staticcheck // the deprecated form
			}
			if uint64(len(d)) != params.GetSize() {
				return nil, status.Errorf(codes.InvalidArgument, "Wrong input: Vector dimension error: expected dim: %d, got %d", params.GetSize(), len(d))
			}
			fp.dense[name] = normalise(d)
		}
		points[p.GetId().GetUuid()] = fp
	}
	for id, p := range points {
		c.points[id] = p
	}
	return done(), nil
}

func sortSparse(s *qc.SparseVector) *qc.SparseVector {
	idx := make([]int, len(s.GetIndices()))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return s.GetIndices()[idx[a]] < s.GetIndices()[idx[b]] })
	out := &qc.SparseVector{Indices: make([]uint32, len(idx)), Values: make([]float32, len(idx))}
	for i, j := range idx {
		out.Indices[i], out.Values[i] = s.GetIndices()[j], s.GetValues()[j]
	}
	return out
}

func (f fakePoints) Delete(_ context.Context, r *qc.DeletePoints) (*qc.PointsOperationResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.collection(r.GetCollectionName())
	if err != nil {
		return nil, err
	}
	filter := r.GetPoints().GetFilter()
	if filter == nil {
		return nil, status.Error(codes.Unimplemented, "fake: delete by filter only")
	}
	for id, p := range c.points {
		if matches(filter, id, p) {
			delete(c.points, id)
		}
	}
	return done(), nil
}

func (f fakePoints) Count(_ context.Context, r *qc.CountPoints) (*qc.CountResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.collection(r.GetCollectionName())
	if err != nil {
		return nil, err
	}
	n := 0
	for id, p := range c.points {
		if r.GetFilter() == nil || matches(r.GetFilter(), id, p) {
			n++
		}
	}
	return &qc.CountResponse{Result: &qc.CountResult{Count: uint64(n)}}, nil
}

func (f fakePoints) Scroll(_ context.Context, r *qc.ScrollPoints) (*qc.ScrollResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.collection(r.GetCollectionName())
	if err != nil {
		return nil, err
	}
	var ids []string
	for id, p := range c.points {
		if (r.GetFilter() == nil || matches(r.GetFilter(), id, p)) && (r.Offset == nil || id >= r.GetOffset().GetUuid()) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	limit := int(r.GetLimit())
	if r.Limit == nil {
		limit = 10
	}
	resp := &qc.ScrollResponse{}
	if len(ids) > limit {
		resp.NextPageOffset = qc.NewIDUUID(ids[limit])
		ids = ids[:limit]
	}
	for _, id := range ids {
		p := c.points[id]
		resp.Result = append(resp.Result, &qc.RetrievedPoint{Id: qc.NewIDUUID(id), Payload: selectPayload(r.GetWithPayload(), p.payload),
			Vectors: selectVectors(r.GetWithVectors(), p)})
	}
	return resp, nil
}

func (f fakePoints) Query(_ context.Context, r *qc.QueryPoints) (*qc.QueryResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.collection(r.GetCollectionName())
	if err != nil {
		return nil, err
	}
	out, err := c.query(r.GetPrefetch(), r.GetQuery(), r.GetUsing(), r.GetFilter(), r.ScoreThreshold, r.Limit)
	if err != nil {
		return nil, err
	}
	return &qc.QueryResponse{Result: c.present(out, r.GetWithPayload(), r.GetWithVectors())}, nil
}

func (f fakePoints) QueryBatch(_ context.Context, r *qc.QueryBatchPoints) (*qc.QueryBatchResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.collection(r.GetCollectionName())
	if err != nil {
		return nil, err
	}
	resp := &qc.QueryBatchResponse{}
	for _, q := range r.GetQueryPoints() {
		out, err := c.query(q.GetPrefetch(), q.GetQuery(), q.GetUsing(), q.GetFilter(), q.ScoreThreshold, q.Limit)
		if err != nil {
			return nil, err
		}
		resp.Result = append(resp.Result, &qc.BatchResult{Result: c.present(out, q.GetWithPayload(), q.GetWithVectors())})
	}
	return resp, nil
}

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

func normalise(v []float32) []float32 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(float64(x) / math.Sqrt(s))
	}
	return out
}
