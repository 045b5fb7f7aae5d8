package rag

import "context"

// DefaultK is the number of hits Search returns when SearchOptions.K is 0.
const DefaultK = 4

// Chunk is one retrievable piece of an ingested document.
type Chunk struct {
	// ID is ChunkID(Source, Index, TextHash(EmbeddingText(Title, Text))):
	// a UUIDv5 in canonical text form.
	ID string
	// Source is the document's path or name as ingested, e.g.
	// "housing/youth-rent-support.md".
	Source string
	// Title is the document's title: its first heading, else its file name.
	Title string
	// Index is the chunk's number within the document, from 0.
	Index int
	// Text is the chunk's text.
	Text string
	// Hash is TextHash(Text): hex SHA-256.
	Hash string
	// Metadata holds further string attributes, e.g. "lang" ("ko" or "en")
	// and "topic". Nil and empty are equivalent.
	Metadata map[string]string
}

// Hit is a chunk found by Search and its cosine similarity to the query,
// from -1 to 1; higher is closer.
type Hit struct {
	Chunk Chunk
	Score float64
}

// SearchOptions narrow a Search. The zero value asks for DefaultK hits of
// any score from every source.
type SearchOptions struct {
	// K is the most hits to return; 0 means DefaultK. Negative is invalid.
	K int
	// MinScore drops hits whose score is below it. 0 keeps every hit with
	// a non-negative score; use -1 to keep all.
	MinScore float64
	// Sources, when not empty, restricts hits to chunks of these sources.
	Sources []string
}

// Embedder turns texts into vectors of Dimension() components, one per
// text, in order. Name identifies the model and its settings: vectors of
// different embedders must never share an index.
type Embedder interface {
	Embed(ctx context.Context, texts []string) ([][]float32, error)
	Dimension() int
	Name() string
}

// Index stores chunks with their vectors and finds the nearest ones.
//
// Upsert inserts chunks or replaces those with the same ID, all or nothing
// per call; vectors[i] belongs to chunks[i] and need not be normalised.
// DeleteSource removes every chunk of a source (a source with no chunks is
// not an error). Sources lists every source with its chunk IDs, for
// re-ingest diffing. Search returns up to K hits ordered by descending
// score (cosine similarity). Name names the implementation for logs.
//
// Implementations check their input with CheckUpsert and CheckSearch and
// pass the contract suite in domain/rag/ragtest.
type Index interface {
	Upsert(ctx context.Context, chunks []Chunk, vectors [][]float32) error
	DeleteSource(ctx context.Context, source string) error
	Sources(ctx context.Context) (map[string][]string, error)
	Search(ctx context.Context, vector []float32, opts SearchOptions) ([]Hit, error)
	Name() string
}

// SourceReplacer is implemented by indexes that can replace all chunks of
// a source without a moment in which the source has none: the new chunks
// are written and the source's other chunks removed, atomically or in that
// order. The Ingester uses it for changed documents when the index has it,
// and DeleteSource then Upsert otherwise.
type SourceReplacer interface {
	ReplaceSource(ctx context.Context, source string, chunks []Chunk, vectors [][]float32) error
}
