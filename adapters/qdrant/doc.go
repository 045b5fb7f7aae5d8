// Package qdrant is a rag.Index over a Qdrant server, through its gRPC API
// (github.com/qdrant/go-client). Open creates the collection if it is
// missing, with two named vectors per point: "bm25", a sparse vector with
// the idf modifier, and, when the collection has an embedder, "dense" of
// its dimension with cosine distance; plus keyword and float indexes on
// the "source" and "avg_tokens" payload fields. It refuses a collection
// of another layout, such as one written before sparse vectors (a single
// unnamed dense vector).
//
// Each chunk is one point: its ID is the chunk's UUID, its payload holds
// source, title, index, text, hash and metadata (a map of strings), and
// its length and the average length its sparse weights were computed
// with (weights.go explains why, and Reweigh how they stay current).
// Upserts go in batches and wait until applied, so a search right after
// sees them. DeleteSource and ReplaceSource delete by a payload filter on
// source.
//
// A search is one batch of the Query API: every list alone, and, with
// more than one, the lists as prefetches fused by Reciprocal Rank Fusion
// on the server; Sources becomes a filter on source, the floors become the
// prefetches' score thresholds. The sparse floor needs the query's IDFs,
// which the server computes and does not tell: a batch of one-term probes
// reads them first (maxScores). Bad input is rejected before anything is
// sent, with the same checks as every rag.Index; but a batch that fails
// half way through an Upsert of several batches leaves the earlier ones
// written (Qdrant has no multi-request transactions): ingest re-runs
// repair it.
//
// A point's payload is bounded (Config.MaxPayloadBytes), and reads accept
// responses as large as their points need, past gRPC's 4 MiB default.
// Errors are mapped to domain codes by what the caller can do (see fail):
// unreachable, timed out, out of resources or closed is EUNAVAILABLE; a
// rate limit ERATELIMITED with its Retry-After; an oversized response or
// chunk ETOOLARGE; refused arguments EINVALID; what only an operator can
// fix (a refused API key, a deleted collection, an old server)
// EUNAVAILABLE matching domain.ErrPermanent. An API key goes over plain
// http only when allowed. Calls racing Close fail as unavailable.
package qdrant
