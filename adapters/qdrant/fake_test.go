package qdrant

import (
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
	"google.golang.org/grpc/metadata"
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
// And its refusals: a wrong or missing api-key header (PermissionDenied),
// strict mode's rate limit (ResourceExhausted with a retry-after
// trailer), requests over 32 MiB (its default max_request_size_mb).
//
// It lets the contract suite check the requests the adapter builds where
// no server runs.
type fakeServer struct {
	qc.UnimplementedQdrantServer

	mu          sync.Mutex
	collections map[string]*fakeCollection
	requests    int           // Upsert requests, for batch tests
	stop        func()        // stops serving; idempotent
	apiKey      string        // when set, the api-key every request must carry
	rateLimited int           // requests still to refuse as rate limited
	block       chan struct{} // when set, requests wait for it to close
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
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(32<<20), grpc.UnaryInterceptor(f.refuse))
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

// refuse answers a request as Qdrant refuses it: without the API key it
// requires, or over strict mode's rate limit (with a retry-after
// trailer, lib/storage/src/content_manager/conversions.rs).
func (f *fakeServer) refuse(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	f.mu.Lock()
	key, block := f.apiKey, f.block
	limited := f.rateLimited > 0
	if limited {
		f.rateLimited--
	}
	f.mu.Unlock()
	if key != "" {
		md, _ := metadata.FromIncomingContext(ctx)
		if got := md.Get("api-key"); len(got) == 0 || got[0] != key {
			return nil, status.Error(codes.PermissionDenied, "Invalid api-key")
		}
	}
	if limited {
		_ = grpc.SetTrailer(ctx, metadata.Pairs("retry-after", "3"))
		return nil, status.Error(codes.ResourceExhausted, "Rate limiting exceeded: Write rate limit exceeded, retry later")
	}
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	return h(ctx, req)
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
