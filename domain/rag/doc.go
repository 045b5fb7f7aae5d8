// Package rag is the vocabulary of retrieval-augmented answering: chunks of
// ingested documents, the term vectors (TermCounts, QueryTerms) and dense
// vectors (an Embedder) they are indexed by, the Index that finds the best
// chunks for a Query, the ingest use case (Ingester) that keeps an index
// in step with a set of documents, and the answers' Retriever.
//
// Retrieval is BM25 over term vectors (text.Terms: Hangul syllable pairs
// and particle-stripped words, stemmed Latin words, numbers), with IDF and
// length normalisation from the collection's own statistics; with a dense
// embedder, a second list by cosine similarity, fused with the first by
// Reciprocal Rank Fusion (FuseRRF, as Qdrant fuses prefetches). The
// Retriever diversifies the fused hits (Diversify) and records every list.
//
// Chunk IDs are deterministic (ChunkID): the same document split the same
// way always gives the same IDs, so re-ingesting an unchanged document is
// recognised by comparing ID sets and writes nothing.
//
// Every Index implementation runs the one contract suite in
// domain/rag/ragtest. CheckUpsert and CheckSearch hold the input rules all
// implementations share, so that they reject the same bad input with the
// same error code; BM25, IDF and FuseRRF are the formulas they share.
package rag
