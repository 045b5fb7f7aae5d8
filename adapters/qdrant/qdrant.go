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
	"sync"
	"time"

	qc "github.com/qdrant/go-client/qdrant"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

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
	// DefaultMaxPayloadBytes bounds the payload of one point: a chunk's
	// text, title, source and metadata, as Parley writes them (its chunks
	// are a few KiB).
	DefaultMaxPayloadBytes = 64 << 10
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
	// fieldTokens is the chunk's length for BM25 (its term count), and
	// fieldAvgTokens the collection's average length its sparse weights
	// were computed with.
	fieldTokens    = "tokens"
	fieldAvgTokens = "avg_tokens"
)

// Named vectors of a point: the embedder's dense vector, when the
// collection has one, and the BM25 weights of its terms, which the server
// multiplies by their IDF (the idf modifier).
const (
	vectorDense  = "dense"
	vectorSparse = "bm25"
)

// Config says which server and collection to use. URL and Collection are
// required; the zero values of the rest are their documented defaults.
type Config struct {
	// URL is the server's gRPC endpoint, e.g. "http://localhost:6334";
	// https means TLS. The port defaults to DefaultPort (6334; 6333 is the
	// REST port and will not work).
	URL string
	// APIKey is sent with every request when set. It never appears in
	// logs, errors or String. Over plain http it would cross the network
	// in clear text, so Validate refuses that unless AllowInsecureAPIKey.
	APIKey string
	// AllowInsecureAPIKey allows an APIKey with an http:// URL, for a
	// network the operator trusts (a compose network, say).
	AllowInsecureAPIKey bool
	// Collection is the collection's name, one per embedder.
	Collection string
	// Dimension is the embedder's vector dimension; 0 for a collection
	// without one, searched by its sparse vectors only.
	Dimension int
	// BatchSize is how many points one upsert request carries; 0 means
	// DefaultBatchSize.
	BatchSize int
	// Timeout bounds each request; 0 means DefaultTimeout.
	Timeout time.Duration
	// MaxPayloadBytes bounds the payload of one point (its chunk's text,
	// title, source and metadata, protobuf-encoded): Upsert refuses a
	// larger chunk as too_large, and reads accept responses as large as
	// their points at this size need, past gRPC's 4 MiB default. 0 means
	// DefaultMaxPayloadBytes.
	MaxPayloadBytes int
}

// Validate reports every problem with c.
func (c Config) Validate() error {
	var errs []error
	if _, _, tls, err := c.endpoint(); err != nil {
		errs = append(errs, err)
	} else if c.APIKey != "" && !tls && !c.AllowInsecureAPIKey {
		errs = append(errs, fmt.Errorf("qdrant: an API key with the http URL %q would cross the network in clear text: use https, or allow it explicitly for a trusted network (AllowInsecureAPIKey)", redact(c.URL)))
	}
	if c.Collection == "" {
		errs = append(errs, errors.New("qdrant: Collection is required"))
	}
	if c.Dimension < 0 {
		errs = append(errs, fmt.Errorf("qdrant: Dimension %d is negative (the embedder's dimension, or 0 for none)", c.Dimension))
	}
	if c.BatchSize < 0 {
		errs = append(errs, fmt.Errorf("qdrant: BatchSize %d is negative", c.BatchSize))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("qdrant: Timeout %s is negative", c.Timeout))
	}
	if c.MaxPayloadBytes < 0 {
		errs = append(errs, fmt.Errorf("qdrant: MaxPayloadBytes %d is negative", c.MaxPayloadBytes))
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
// Calls that race Close, or come after it, fail as unavailable.
type Index struct {
	client *qc.Client
	cfg    Config
	stats  lengthStats // for writes: the collection's chunk lengths

	closing context.Context // ends when Close starts: calls in flight end
	stop    context.CancelFunc
	mu      sync.RWMutex // read-held by each call; Close takes it to close the client
	closed  bool
}

var (
	_ rag.Index          = (*Index)(nil)
	_ rag.SourceReplacer = (*Index)(nil)
	_ rag.Reweigher      = (*Index)(nil)
)

// Open connects to the server, checks it answers, and makes sure the
// collection exists with its named vectors: "bm25", sparse with the idf
// modifier, and "dense" of cfg.Dimension with cosine distance unless that
// is 0. Close the Index when done.
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
	if cfg.MaxPayloadBytes == 0 {
		cfg.MaxPayloadBytes = DefaultMaxPayloadBytes
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
	x.closing, x.stop = context.WithCancel(context.Background())
	if err := x.ensureCollection(ctx); err != nil {
		_ = x.Close()
		return nil, err
	}
	return x, nil
}

// Name returns "qdrant".
func (x *Index) Name() string { return "qdrant" }

func (x *Index) ensureCollection(ctx context.Context) error {
	cctx, done, err := x.call(ctx)
	if err != nil {
		return x.fail("open", err)
	}
	defer done()
	if _, err := x.client.HealthCheck(cctx); err != nil {
		return x.fail("health check (is Qdrant running, and is the URL its gRPC port?)", err)
	}
	exists, err := x.client.CollectionExists(cctx, x.cfg.Collection)
	if err != nil {
		return x.fail("check collection", err)
	}
	if !exists {
		create := &qc.CreateCollection{
			CollectionName: x.cfg.Collection,
			SparseVectorsConfig: qc.NewSparseVectorsConfig(map[string]*qc.SparseVectorParams{
				vectorSparse: {Modifier: qc.Modifier_Idf.Enum()},
			}),
		}
		if x.cfg.Dimension > 0 {
			create.VectorsConfig = qc.NewVectorsConfigMap(map[string]*qc.VectorParams{
				vectorDense: {Size: uint64(x.cfg.Dimension), Distance: qc.Distance_Cosine},
			})
		}
		err := x.client.CreateCollection(cctx, create)
		if err != nil && status.Code(errors.Unwrap(err)) != codes.AlreadyExists {
			return x.fail("create collection", err)
		}
	}
	info, err := x.client.GetCollectionInfo(cctx, x.cfg.Collection)
	if err != nil {
		return x.fail("read collection", err)
	}
	if err := x.checkLayout(info.GetConfig().GetParams()); err != nil {
		return err
	}
	for field, typ := range map[string]qc.FieldType{fieldSource: qc.FieldType_FieldTypeKeyword, fieldAvgTokens: qc.FieldType_FieldTypeFloat} {
		_, err = x.client.CreateFieldIndex(cctx, &qc.CreateFieldIndexCollection{
			CollectionName: x.cfg.Collection,
			Wait:           qc.PtrOf(true),
			FieldName:      field,
			FieldType:      typ.Enum(),
		})
		if err != nil {
			return x.fail("create payload index on "+field, err)
		}
	}
	return nil
}

// checkLayout refuses a collection whose vectors are not the ones Open
// creates: one written before sparse retrieval (an unnamed dense vector),
// or for another embedder.
func (x *Index) checkLayout(p *qc.CollectionParams) error {
	vectors := p.GetVectorsConfig()
	if vectors.GetParams() != nil {
		return domain.Errorf(domain.EINVALID,
			"qdrant collection %s has one unnamed dense vector, as Parley made them before sparse retrieval: ingest into another collection (PARLEY_RAG_COLLECTION), or delete this one and ingest again",
			x.cfg.Collection)
	}
	named := vectors.GetParamsMap().GetMap()
	dense, ok := named[vectorDense]
	switch {
	case x.cfg.Dimension == 0 && len(named) > 0, x.cfg.Dimension > 0 && (!ok || len(named) != 1):
		return domain.Errorf(domain.EINVALID, "qdrant collection %s has dense vectors %v, the embedder needs %s: use another collection for this embedder, or delete this one",
			x.cfg.Collection, vectorNames(named), wantDense(x.cfg.Dimension))
	case ok && (dense.GetSize() != uint64(x.cfg.Dimension) || dense.GetDistance() != qc.Distance_Cosine):
		return domain.Errorf(domain.EINVALID,
			"qdrant collection %s holds %d-dimensional vectors with %s distance, the embedder needs %d with Cosine: use another collection for this embedder, or delete this one",
			x.cfg.Collection, dense.GetSize(), dense.GetDistance(), x.cfg.Dimension)
	}
	sparse, ok := p.GetSparseVectorsConfig().GetMap()[vectorSparse]
	if !ok || sparse.GetModifier() != qc.Modifier_Idf {
		return domain.Errorf(domain.EINVALID, "qdrant collection %s has no sparse vector %q with the idf modifier: use another collection, or delete this one",
			x.cfg.Collection, vectorSparse)
	}
	return nil
}

func vectorNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func wantDense(dim int) string {
	if dim == 0 {
		return "none"
	}
	return fmt.Sprintf("%q of %d dimensions", vectorDense, dim)
}

// Upsert implements rag.Index. Sparse weights are computed with the
// collection's average chunk length including these chunks; Reweigh
// brings them up to date once the collection has settled.
func (x *Index) Upsert(ctx context.Context, chunks []rag.Chunk, vectors []rag.Vectors) error {
	if err := rag.CheckUpsert(chunks, vectors, x.cfg.Dimension); err != nil {
		return err
	}
	return x.upsert(ctx, chunks, vectors)
}

func (x *Index) upsert(ctx context.Context, chunks []rag.Chunk, vectors []rag.Vectors) error {
	avg, err := x.stats.averageWith(ctx, x, vectors)
	if err != nil {
		return err
	}
	for start := 0; start < len(chunks); start += x.cfg.BatchSize {
		end := min(start+x.cfg.BatchSize, len(chunks))
		points := make([]*qc.PointStruct, 0, end-start)
		for i := start; i < end; i++ {
			p, err := point(chunks[i], vectors[i], avg)
			if err != nil {
				return domain.Errorf(domain.EINVALID, "qdrant upsert: chunk %s: %v", chunks[i].ID, err)
			}
			if n := proto.Size(&qc.PointStruct{Payload: p.GetPayload()}); n > x.cfg.MaxPayloadBytes {
				return domain.Errorf(domain.ETOOLARGE, "qdrant upsert: chunk %s of %s: its payload is %d bytes, over the index's limit of %d (split documents into smaller chunks)",
					chunks[i].ID, chunks[i].Source, n, x.cfg.MaxPayloadBytes)
			}
			points = append(points, p)
		}
		cctx, done, err := x.call(ctx)
		if err == nil {
			_, err = x.client.Upsert(cctx, &qc.UpsertPoints{
				CollectionName: x.cfg.Collection,
				Wait:           qc.PtrOf(true),
				Points:         points,
			})
			done()
		}
		if err != nil {
			return x.fail(fmt.Sprintf("upsert points %d-%d of %d", start, end, len(chunks)), err)
		}
	}
	return nil
}

// ReplaceSource implements rag.SourceReplacer: it upserts the new chunks,
// then deletes the source's points that are not among them, so searches
// never see the source without chunks.
func (x *Index) ReplaceSource(ctx context.Context, source string, chunks []rag.Chunk, vectors []rag.Vectors) error {
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
	cctx, done, err := x.call(ctx)
	if err != nil {
		return x.fail(what, err)
	}
	defer done()
	_, err = x.client.Delete(cctx, &qc.DeletePoints{
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
	err := x.scroll(ctx, "list sources", nil, qc.NewWithPayloadInclude(fieldSource), nil, func(p *qc.RetrievedPoint) error {
		src := p.GetPayload()[fieldSource].GetStringValue()
		out[src] = append(out[src], p.GetId().GetUuid())
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// toPayload is c's payload, with its length and the average length its
// sparse weights were computed with.
func toPayload(c rag.Chunk, tokens, avg float64) (map[string]*qc.Value, error) {
	meta := make(map[string]any, len(c.Metadata))
	for k, v := range c.Metadata {
		meta[k] = v
	}
	return qc.TryValueMap(map[string]any{
		fieldSource:    c.Source,
		fieldTitle:     c.Title,
		fieldIndex:     c.Index,
		fieldText:      c.Text,
		fieldHash:      c.Hash,
		fieldMetadata:  meta,
		fieldTokens:    tokens,
		fieldAvgTokens: avg,
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
