// Package qdrant is a rag.Index over a Qdrant server, through its gRPC API
// (github.com/qdrant/go-client). Open creates the collection if it is
// missing, with the embedder's dimension and cosine distance, and a keyword
// index on the "source" payload field; it refuses a collection of another
// dimension or distance.
//
// Each chunk is one point: its ID is the chunk's UUID, its payload holds
// source, title, index, text, hash and metadata (a map of strings). Upserts
// go in batches and wait until applied, so a search right after sees them.
// DeleteSource and ReplaceSource delete by a payload filter on source;
// searches pass K, MinScore (as score_threshold) and Sources (as a filter
// on source) to the server. Bad input is rejected before anything is sent,
// with the same checks as every rag.Index; but a batch that fails half way
// through an Upsert of several batches leaves the earlier ones written
// (Qdrant has no multi-request transactions): ingest re-runs repair it.
//
// Errors are mapped to domain codes: unreachable or timed out is
// EUNAVAILABLE, refused arguments EINVALID, a missing collection
// ENOTFOUND.
package qdrant
