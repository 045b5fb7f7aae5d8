package qdrant

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"time"

	qc "github.com/qdrant/go-client/qdrant"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/rag"
)

// Defaults for zero Config fields.
const (
	// DefaultPort is Qdrant's gRPC port, used when the URL has none.
	DefaultPort = 6334
	// DefaultBatchSize is how many points one upsert request carries.
	DefaultBatchSize = 256
	// DefaultTimeout bounds each request.
	DefaultTimeout = 30 * time.Second
)

// scrollPage is how many points one Sources request reads.
const scrollPage = 1024

// Payload field names.
const (
	fieldSource   = "source"
	fieldTitle    = "title"
	fieldIndex    = "index"
	fieldText     = "text"
	fieldHash     = "hash"
	fieldMetadata = "metadata"
)

// Config says which server and collection to use. URL, Collection and
// Dimension are required; the zero values of the rest are their
// documented defaults.
type Config struct {
	// URL is the server's gRPC endpoint, e.g. "http://localhost:6334";
	// https means TLS. The port defaults to DefaultPort (6334; 6333 is the
	// REST port and will not work).
	URL string
	// APIKey is sent with every request when set. It never appears in
	// logs, errors or String.
	APIKey string
	// Collection is the collection's name, one per embedder.
	Collection string
	// Dimension is the embedder's vector dimension.
	Dimension int
	// BatchSize is how many points one upsert request carries; 0 means
	// DefaultBatchSize.
	BatchSize int
	// Timeout bounds each request; 0 means DefaultTimeout.
	Timeout time.Duration
}

// Validate reports every problem with c.
func (c Config) Validate() error {
	var errs []error
	if _, _, _, err := c.endpoint(); err != nil {
		errs = append(errs, err)
	}
	if c.Collection == "" {
		errs = append(errs, errors.New("qdrant: Collection is required"))
	}
	if c.Dimension <= 0 {
		errs = append(errs, fmt.Errorf("qdrant: Dimension %d must be positive (the embedder's dimension)", c.Dimension))
	}
	if c.BatchSize < 0 {
		errs = append(errs, fmt.Errorf("qdrant: BatchSize %d is negative", c.BatchSize))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("qdrant: Timeout %s is negative", c.Timeout))
	}
	return errors.Join(errs...)
}

// endpoint returns the host, port and whether to use TLS.
func (c Config) endpoint() (host string, port int, tls bool, err error) {
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return "", 0, false, fmt.Errorf("qdrant: URL %q is not an http(s)://host[:port] URL (e.g. http://localhost:6334)", redact(c.URL))
	}
	port = DefaultPort
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil || port < 1 || port > 65535 {
			return "", 0, false, fmt.Errorf("qdrant: URL %q has a bad port", redact(c.URL))
		}
	}
	return u.Hostname(), port, u.Scheme == "https", nil
}

// LogValue implements slog.LogValuer, without the API key.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("url", redact(c.URL)),
		slog.Bool("api_key_set", c.APIKey != ""),
		slog.String("collection", c.Collection),
		slog.Int("dimension", c.Dimension),
	)
}

// String describes c without the API key.
func (c Config) String() string { return c.LogValue().String() }

func redact(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return "(unparsable URL)"
}

// Index is a rag.Index in a Qdrant collection, safe for concurrent use.
type Index struct {
	client *qc.Client
	cfg    Config
}

var (
	_ rag.Index          = (*Index)(nil)
	_ rag.SourceReplacer = (*Index)(nil)
)

// Open connects to the server, checks it answers, and makes sure the
// collection exists with cfg.Dimension and cosine distance. Close the
// Index when done.
func Open(ctx context.Context, cfg Config) (*Index, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	host, port, tls, _ := cfg.endpoint()
	client, err := qc.NewClient(&qc.Config{
		Host:                   host,
		Port:                   port,
		APIKey:                 cfg.APIKey,
		UseTLS:                 tls,
		PoolSize:               1,
		SkipCompatibilityCheck: true,
	})
	if err != nil {
		return nil, fmt.Errorf("qdrant %s: connect: %w", net.JoinHostPort(host, strconv.Itoa(port)), err)
	}
	x := &Index{client: client, cfg: cfg}
	if err := x.ensureCollection(ctx); err != nil {
		client.Close()
		return nil, err
	}
	return x, nil
}

// Close closes the connection.
func (x *Index) Close() error { return x.client.Close() }

// Name returns "qdrant".
func (x *Index) Name() string { return "qdrant" }

func (x *Index) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, x.cfg.Timeout)
}

func (x *Index) ensureCollection(ctx context.Context) error {
	cctx, cancel := x.call(ctx)
	defer cancel()
	if _, err := x.client.HealthCheck(cctx); err != nil {
		return x.fail("health check (is Qdrant running, and is the URL its gRPC port?)", err)
	}
	exists, err := x.client.CollectionExists(cctx, x.cfg.Collection)
	if err != nil {
		return x.fail("check collection", err)
	}
	if !exists {
		err := x.client.CreateCollection(cctx, &qc.CreateCollection{
			CollectionName: x.cfg.Collection,
			VectorsConfig: qc.NewVectorsConfig(&qc.VectorParams{
				Size:     uint64(x.cfg.Dimension),
				Distance: qc.Distance_Cosine,
			}),
		})
		if err != nil && status.Code(errors.Unwrap(err)) != codes.AlreadyExists {
			return x.fail("create collection", err)
		}
	}
	info, err := x.client.GetCollectionInfo(cctx, x.cfg.Collection)
	if err != nil {
		return x.fail("read collection", err)
	}
	params := info.GetConfig().GetParams().GetVectorsConfig().GetParams()
	if params == nil {
		return domain.Errorf(domain.EINVALID, "qdrant collection %s has named or no vectors; Parley needs one unnamed dense vector: use another collection", x.cfg.Collection)
	}
	if params.GetSize() != uint64(x.cfg.Dimension) || params.GetDistance() != qc.Distance_Cosine {
		return domain.Errorf(domain.EINVALID,
			"qdrant collection %s holds %d-dimensional vectors with %s distance, the embedder needs %d with Cosine: use another collection for this embedder, or delete this one",
			x.cfg.Collection, params.GetSize(), params.GetDistance(), x.cfg.Dimension)
	}
	_, err = x.client.CreateFieldIndex(cctx, &qc.CreateFieldIndexCollection{
		CollectionName: x.cfg.Collection,
		Wait:           qc.PtrOf(true),
		FieldName:      fieldSource,
		FieldType:      qc.FieldType_FieldTypeKeyword.Enum(),
	})
	if err != nil {
		return x.fail("create payload index on source", err)
	}
	return nil
}

// Upsert implements rag.Index.
func (x *Index) Upsert(ctx context.Context, chunks []rag.Chunk, vectors [][]float32) error {
	if err := rag.CheckUpsert(chunks, vectors, x.cfg.Dimension); err != nil {
		return err
	}
	return x.upsert(ctx, chunks, vectors)
}

func (x *Index) upsert(ctx context.Context, chunks []rag.Chunk, vectors [][]float32) error {
	for start := 0; start < len(chunks); start += x.cfg.BatchSize {
		end := min(start+x.cfg.BatchSize, len(chunks))
		points := make([]*qc.PointStruct, 0, end-start)
		for i := start; i < end; i++ {
			payload, err := toPayload(chunks[i])
			if err != nil {
				return domain.Errorf(domain.EINVALID, "qdrant upsert: chunk %s: %v", chunks[i].ID, err)
			}
			points = append(points, &qc.PointStruct{
				Id:      qc.NewIDUUID(chunks[i].ID),
				Vectors: qc.NewVectorsDense(rag.Normalize(vectors[i])),
				Payload: payload,
			})
		}
		cctx, cancel := x.call(ctx)
		_, err := x.client.Upsert(cctx, &qc.UpsertPoints{
			CollectionName: x.cfg.Collection,
			Wait:           qc.PtrOf(true),
			Points:         points,
		})
		cancel()
		if err != nil {
			return x.fail(fmt.Sprintf("upsert points %d-%d of %d", start, end, len(chunks)), err)
		}
	}
	return nil
}

// ReplaceSource implements rag.SourceReplacer: it upserts the new chunks,
// then deletes the source's points that are not among them, so searches
// never see the source without chunks.
func (x *Index) ReplaceSource(ctx context.Context, source string, chunks []rag.Chunk, vectors [][]float32) error {
	if err := rag.CheckReplace(source, chunks, vectors, x.cfg.Dimension); err != nil {
		return err
	}
	if err := x.upsert(ctx, chunks, vectors); err != nil {
		return err
	}
	filter := &qc.Filter{Must: []*qc.Condition{qc.NewMatchKeyword(fieldSource, source)}}
	if len(chunks) > 0 {
		ids := make([]*qc.PointId, len(chunks))
		for i, c := range chunks {
			ids[i] = qc.NewIDUUID(c.ID)
		}
		filter.MustNot = []*qc.Condition{qc.NewHasID(ids...)}
	}
	return x.deleteWhere(ctx, "delete replaced points of "+source, filter)
}

// DeleteSource implements rag.Index.
func (x *Index) DeleteSource(ctx context.Context, source string) error {
	return x.deleteWhere(ctx, "delete source "+source,
		&qc.Filter{Must: []*qc.Condition{qc.NewMatchKeyword(fieldSource, source)}})
}

func (x *Index) deleteWhere(ctx context.Context, what string, filter *qc.Filter) error {
	cctx, cancel := x.call(ctx)
	defer cancel()
	_, err := x.client.Delete(cctx, &qc.DeletePoints{
		CollectionName: x.cfg.Collection,
		Wait:           qc.PtrOf(true),
		Points:         qc.NewPointsSelectorFilter(filter),
	})
	if err != nil {
		return x.fail(what, err)
	}
	return nil
}

// Sources implements rag.Index by scrolling through the collection's
// source fields.
func (x *Index) Sources(ctx context.Context) (map[string][]string, error) {
	out := map[string][]string{}
	var offset *qc.PointId
	for {
		cctx, cancel := x.call(ctx)
		points, next, err := x.client.ScrollAndOffset(cctx, &qc.ScrollPoints{
			CollectionName: x.cfg.Collection,
			Offset:         offset,
			Limit:          qc.PtrOf(uint32(scrollPage)),
			WithPayload:    qc.NewWithPayloadInclude(fieldSource),
			WithVectors:    qc.NewWithVectors(false),
		})
		cancel()
		if err != nil {
			return nil, x.fail("list sources", err)
		}
		for _, p := range points {
			src := p.GetPayload()[fieldSource].GetStringValue()
			out[src] = append(out[src], p.GetId().GetUuid())
		}
		if next == nil || len(points) == 0 {
			return out, nil
		}
		offset = next
	}
}

// Search implements rag.Index.
func (x *Index) Search(ctx context.Context, vector []float32, opts rag.SearchOptions) ([]rag.Hit, error) {
	opts, err := rag.CheckSearch(vector, x.cfg.Dimension, opts)
	if err != nil {
		return nil, err
	}
	req := &qc.QueryPoints{
		CollectionName: x.cfg.Collection,
		Query:          qc.NewQueryDense(rag.Normalize(vector)),
		Limit:          qc.PtrOf(uint64(opts.K)),
		WithPayload:    qc.NewWithPayload(true),
	}
	// The threshold goes to the server only where it removes something:
	// cosine scores are never below -1.
	if opts.MinScore > -1 {
		req.ScoreThreshold = qc.PtrOf(float32(opts.MinScore))
	}
	if len(opts.Sources) > 0 {
		req.Filter = &qc.Filter{Must: []*qc.Condition{qc.NewMatchKeywords(fieldSource, slices.Clone(opts.Sources)...)}}
	}
	cctx, cancel := x.call(ctx)
	defer cancel()
	points, err := x.client.Query(cctx, req)
	if err != nil {
		return nil, x.fail("search", err)
	}
	hits := make([]rag.Hit, 0, len(points))
	for _, p := range points {
		score := float64(p.GetScore())
		if score < opts.MinScore { // float32 rounding at the threshold
			continue
		}
		c, err := fromPayload(p.GetId().GetUuid(), p.GetPayload())
		if err != nil {
			return nil, fmt.Errorf("qdrant %s: search: point %s: %w", x.cfg.Collection, p.GetId().GetUuid(), err)
		}
		hits = append(hits, rag.Hit{Chunk: c, Score: score})
	}
	return hits, nil
}

func toPayload(c rag.Chunk) (map[string]*qc.Value, error) {
	meta := make(map[string]any, len(c.Metadata))
	for k, v := range c.Metadata {
		meta[k] = v
	}
	return qc.TryValueMap(map[string]any{
		fieldSource:   c.Source,
		fieldTitle:    c.Title,
		fieldIndex:    c.Index,
		fieldText:     c.Text,
		fieldHash:     c.Hash,
		fieldMetadata: meta,
	})
}

func fromPayload(id string, p map[string]*qc.Value) (rag.Chunk, error) {
	if id == "" {
		return rag.Chunk{}, errors.New("point has no UUID: not written by Parley")
	}
	src, ok := p[fieldSource]
	if !ok {
		return rag.Chunk{}, errors.New("point has no source payload: not written by Parley")
	}
	c := rag.Chunk{
		ID:     id,
		Source: src.GetStringValue(),
		Title:  p[fieldTitle].GetStringValue(),
		Index:  int(p[fieldIndex].GetIntegerValue()),
		Text:   p[fieldText].GetStringValue(),
		Hash:   p[fieldHash].GetStringValue(),
	}
	if fields := p[fieldMetadata].GetStructValue().GetFields(); len(fields) > 0 {
		c.Metadata = make(map[string]string, len(fields))
		for k, v := range fields {
			c.Metadata[k] = v.GetStringValue()
		}
	}
	return c, nil
}

// fail wraps a client error with what was being done and, when a gRPC
// status or a deadline says what went wrong, a *domain.Error with its code
// and a message safe to show clients; the client's error stays in the
// chain for logs and errors.As.
func (x *Index) fail(what string, err error) error {
	var coded *domain.Error
	switch status.Code(unwrapStatus(err)) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted:
		coded = domain.Errorf(domain.EUNAVAILABLE, "the vector index is unavailable; try again later")
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		coded = domain.Errorf(domain.EINVALID, "the vector index rejected the request")
	case codes.NotFound:
		coded = domain.Errorf(domain.ENOTFOUND, "the vector index collection was not found")
	case codes.Unauthenticated, codes.PermissionDenied:
		coded = domain.Errorf(domain.EUNAUTHORIZED, "the vector index refused the credentials")
	}
	if errors.Is(err, context.DeadlineExceeded) {
		coded = domain.Errorf(domain.EUNAVAILABLE, "the vector index is unavailable; try again later")
	}
	if coded == nil {
		return fmt.Errorf("qdrant %s: %s: %w", x.cfg.Collection, what, err)
	}
	return fmt.Errorf("qdrant %s: %s: %w: %w", x.cfg.Collection, what, coded, err)
}

// unwrapStatus returns the innermost error that carries a gRPC status.
func unwrapStatus(err error) error {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if _, ok := status.FromError(e); ok {
			return e
		}
	}
	return err
}
