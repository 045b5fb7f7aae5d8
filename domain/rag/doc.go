// Package rag is the vocabulary of retrieval-augmented answering: chunks of
// ingested documents, the vectors an Embedder gives them, the Index that
// finds the chunks nearest to a question, and the ingest use case
// (Ingester) that keeps an index in step with a set of documents.
//
// Chunk IDs are deterministic (ChunkID): the same document split the same
// way always gives the same IDs, so re-ingesting an unchanged document is
// recognised by comparing ID sets and writes nothing.
//
// Every Index implementation runs the one contract suite in
// domain/rag/ragtest. CheckUpsert and CheckSearch hold the input rules all
// implementations share, so that they reject the same bad input with the
// same error code.
package rag
