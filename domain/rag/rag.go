// Package rag holds the retrieval-augmented generation vocabulary: chunks of
// ingested documents, the embedder that turns text into vectors, and the
// index that finds the chunks closest to a question.
package rag

import "context"

// Chunk is one piece of an ingested document.
type Chunk struct {
	ID       string // deterministic UUIDv5(source + index + content hash), as text
	Source   string // document path/name as ingested (e.g. "housing/youth-rent-support.md")
	Title    string // document title (first heading or file name)
	Index    int    // chunk number within the document
	Text     string
	Hash     string            // hex SHA-256 of Text
	Metadata map[string]string // e.g. "lang": "ko"|"en", "topic"
}

// Hit is a chunk found by a search, with its cosine similarity.
type Hit struct {
	Chunk Chunk
	Score float64
}

// SearchOptions narrow a search.
type SearchOptions struct {
	K        int
	MinScore float64
	Sources  []string // filter; empty means all
}

// Embedder turns texts into vectors of Dimension floats.
type Embedder interface {
	Embed(ctx context.Context, texts []string) ([][]float32, error)
	Dimension() int
	Name() string
}

// Index stores chunks with their vectors and finds the closest.
type Index interface {
	Upsert(ctx context.Context, chunks []Chunk, vectors [][]float32) error
	DeleteSource(ctx context.Context, source string) error
	Sources(ctx context.Context) (map[string][]string, error)
	Search(ctx context.Context, vector []float32, opts SearchOptions) ([]Hit, error)
	Name() string
}
