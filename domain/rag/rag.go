package rag

import "context"

// DefaultK is the number of hits Search returns when SearchOptions.K is 0.
const DefaultK = 4

// Retriever kinds, as List.Kind names them.
const (
	KindSparse = "sparse" // BM25 over term vectors
	KindDense  = "dense"  // cosine similarity of an embedder's vectors
)

// Chunk is one retrievable piece of an ingested document.
type Chunk struct {
	// ID is ChunkID(Source, Index, TextHash(IndexText(...))): a UUIDv5 in
	// canonical text form.
	ID string
	// Source is the document's path or name as ingested, e.g.
	// "housing/youth-rent-support.md".
	Source string
	// Title is the document's title: its first heading, else its file name.
	Title string
	// Index is the chunk's number within the document, from 0.
	Index int
	// Text is the chunk's text, without its section's heading.
	Text string
	// Hash is TextHash(Text): hex SHA-256.
	Hash string
	// Metadata holds further string attributes, e.g. "lang" ("ko" or "en"),
	// "topic" and "section" (the heading path, MetaSection). Nil and empty
	// are equivalent.
	Metadata map[string]string
}

// SparseVector is a vector given by its non-zero components: Values[i] is
// the component at Indices[i], and Indices ascend strictly. For a chunk the
// values are term counts (TermCounts), for a query term weights
// (QueryTerms).
type SparseVector struct {
	Indices []uint32
	Values  []float32
}

// Len returns the number of non-zero components.
func (v SparseVector) Len() int { return len(v.Indices) }

// Vectors are what an index stores for one chunk besides the chunk.
type Vectors struct {
	// Dense is the embedder's vector; nil in a collection without a dense
	// embedder (Dimension 0). It need not be normalised.
	Dense []float32
	// Sparse is the chunk's term counts, TermCounts(IndexText(chunk)).
	Sparse SparseVector
}

// Query is what a Search looks for. Every vector is one retriever's query
// and gives one ranked list; the lists are fused by Reciprocal Rank Fusion
// (FuseRRF). Sparse vectors are term weights scored by BM25 with the
// collection's statistics; dense vectors are scored by cosine similarity.
type Query struct {
	Sparse []SparseVector
	Dense  [][]float32
}

// SearchOptions narrow a Search. The zero value asks for DefaultK fused
// hits from every source, each list contributing as many.
type SearchOptions struct {
	// K is the most fused hits to return; 0 means DefaultK. Negative is
	// invalid.
	K int
	// Candidates is how many hits each list contributes to the fusion at
	// most; 0 means K.
	Candidates int
	// MinRelevance drops sparse hits scoring less than this share (0 to 1)
	// of the best score any chunk could reach for their query (MaxScore):
	// a chunk matching only common words of the question is no source.
	MinRelevance float64
	// MinSimilarity drops dense hits whose cosine similarity is below it.
	// 0 keeps every hit with a non-negative similarity; use -1 to keep all.
	MinSimilarity float64
	// RRFK is the k of Reciprocal Rank Fusion; 0 means DefaultRRFK.
	RRFK int
	// Sources, when not empty, restricts hits to chunks of these sources.
	// Statistics (IDF, average length) stay those of the whole collection.
	Sources []string
}

// Hit is a chunk found by Search and its fused score: the sum over the
// lists that found it of 1/(RRFK + position), positions from 0.
type Hit struct {
	Chunk Chunk
	Score float64
}

// Result is what a Search found.
type Result struct {
	// Hits are the fused hits, best first, at most K.
	Hits []Hit
	// Lists are the ranked lists that were fused, sparse ones first, in
	// Query order, each after its floor and cut to Candidates.
	Lists []List
}

// List is one retriever's ranked list.
type List struct {
	// Kind is KindSparse or KindDense.
	Kind string
	// Hits are best first: a hit's rank is its position plus one.
	Hits []ListHit
}

// ListHit is one chunk of a List and its score there: for a sparse list
// the share of its query's MaxScore it reached (0 to 1), for a dense list
// its cosine similarity (-1 to 1).
type ListHit struct {
	ChunkID string
	Source  string
	Score   float64
}

// Embedder turns texts into vectors of Dimension() components, one per
// text, in order. Name identifies the model and its settings: vectors of
// different embedders must never share an index.
type Embedder interface {
	Embed(ctx context.Context, texts []string) ([][]float32, error)
	Dimension() int
	Name() string
}

// Index stores chunks with their sparse and (optionally) dense vectors and
// finds the best ones for a Query.
//
// Upsert inserts chunks or replaces those with the same ID, all or nothing
// per call; vectors[i] belongs to chunks[i]. DeleteSource removes every
// chunk of a source (a source with no chunks is not an error). Sources
// lists every source with the IDs of its complete chunks (those with a
// sparse vector of SparseEncoding), for re-ingest diffing. Search runs each
// list of the Query and fuses them. Name names the implementation for logs.
//
// Sparse scoring is BM25 (BM25.Score): IDF and length normalisation come
// from the statistics of the whole collection as it is at the moment of
// the search, so they change as documents are added and removed.
//
// Implementations check their input with CheckUpsert and CheckSearch and
// pass the contract suite in domain/rag/ragtest.
type Index interface {
	Upsert(ctx context.Context, chunks []Chunk, vectors []Vectors) error
	DeleteSource(ctx context.Context, source string) error
	Sources(ctx context.Context) (map[string][]string, error)
	Search(ctx context.Context, q Query, opts SearchOptions) (Result, error)
	Name() string
}

// SourceReplacer is implemented by indexes that can replace all chunks of
// a source without a moment in which the source has none: the new chunks
// are written and the source's other chunks removed, atomically or in that
// order. The Ingester uses it for changed documents when the index has it,
// and DeleteSource then Upsert otherwise.
type SourceReplacer interface {
	ReplaceSource(ctx context.Context, source string, chunks []Chunk, vectors []Vectors) error
}

// Reweigher is implemented by indexes that store BM25 weights computed
// with the collection's average chunk length at the time of writing (a
// server that only applies IDF, like Qdrant). Reweigh rewrites the weights
// of chunks written with an average that has drifted from today's, and
// returns how many it rewrote. The Ingester calls it after a Sync that
// changed the collection.
type Reweigher interface {
	Reweigh(ctx context.Context) (int, error)
}
