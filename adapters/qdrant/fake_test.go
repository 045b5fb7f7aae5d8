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
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// fakeServer is an in-memory Qdrant speaking the gRPC API, implementing
// the calls the adapter makes with Qdrant's semantics for them: cosine
// scores of normalised vectors, score_threshold as a lower bound, keyword
// and has_id filters, scrolling by ascending ID. It lets the contract
// suite check the requests the adapter builds where no server runs.
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
	params *qc.VectorParams
	points map[string]*fakePoint
}

type fakePoint struct {
	vector  []float32
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
	p := r.GetVectorsConfig().GetParams()
	if p == nil || p.GetSize() == 0 {
		return nil, status.Error(codes.InvalidArgument, "vectors config required")
	}
	f.collections[r.GetCollectionName()] = &fakeCollection{params: proto.Clone(p).(*qc.VectorParams), points: map[string]*fakePoint{}}
	return &qc.CollectionOperationResponse{Result: true}, nil
}

func (f fakeCollections) Get(_ context.Context, r *qc.GetCollectionInfoRequest) (*qc.GetCollectionInfoResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.collection(r.GetCollectionName())
	if err != nil {
		return nil, err
	}
	return &qc.GetCollectionInfoResponse{Result: &qc.CollectionInfo{Config: &qc.CollectionConfig{
		Params: &qc.CollectionParams{VectorsConfig: qc.NewVectorsConfig(c.params)},
	}}}, nil
}

func (f *fakeServer) collection(name string) (*fakeCollection, error) {
	c, ok := f.collections[name]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "Collection `%s` doesn't exist!", name)
	}
	return c, nil
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
	for _, p := range r.GetPoints() {
		v := p.GetVectors().GetVector().GetDense().GetData()
		if uint64(len(v)) != c.params.GetSize() {
			return nil, status.Errorf(codes.InvalidArgument, "Wrong input: Vector dimension error: expected dim: %d, got %d", c.params.GetSize(), len(v))
		}
		if p.GetId().GetUuid() == "" {
			return nil, status.Error(codes.InvalidArgument, "point ID must be a UUID here")
		}
		c.points[p.GetId().GetUuid()] = &fakePoint{vector: normalise(v), payload: p.GetPayload()}
	}
	return done(), nil
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
		resp.Result = append(resp.Result, &qc.RetrievedPoint{Id: qc.NewIDUUID(id), Payload: selectPayload(r.GetWithPayload(), c.points[id].payload)})
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
	q := r.GetQuery().GetNearest().GetDense().GetData()
	if uint64(len(q)) != c.params.GetSize() {
		return nil, status.Errorf(codes.InvalidArgument, "Wrong input: Vector dimension error: expected dim: %d, got %d", c.params.GetSize(), len(q))
	}
	q = normalise(q)
	var out []*qc.ScoredPoint
	for id, p := range c.points {
		if r.GetFilter() != nil && !matches(r.GetFilter(), id, p) {
			continue
		}
		var dot float32
		for i := range q {
			dot += q[i] * p.vector[i]
		}
		if r.ScoreThreshold != nil && dot < r.GetScoreThreshold() {
			continue
		}
		out = append(out, &qc.ScoredPoint{Id: qc.NewIDUUID(id), Score: dot, Payload: selectPayload(r.GetWithPayload(), p.payload)})
	}
	slices.SortFunc(out, func(a, b *qc.ScoredPoint) int {
		switch {
		case a.Score > b.Score:
			return -1
		case a.Score < b.Score:
			return 1
		}
		return 0
	})
	limit := int(r.GetLimit())
	if r.Limit == nil {
		limit = 10
	}
	if len(out) > limit {
		out = out[:limit]
	}
	return &qc.QueryResponse{Result: out}, nil
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

// matches evaluates the filter conditions the adapter uses: keyword and
// keywords matches on a field, and has_id.
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
	fc := c.GetField()
	if fc == nil {
		panic("fake qdrant: unsupported condition " + c.String())
	}
	got := p.payload[fc.GetKey()].GetStringValue()
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
