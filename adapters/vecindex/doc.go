// Package vecindex is an in-process rag.Index: chunks, their term vectors
// and (optionally) their dense vectors held in memory and searched
// without an index build, so writes are visible at once. The Postgres
// index (adapters/postgres RAGIndex) keeps one of these as its searchable
// copy; on its own an Index forgets everything when the process ends.
//
// Sparse search is BM25 over an inverted index: each term's postings list
// the slots holding it and how often. The statistics BM25 needs (chunks
// with terms, each term's document frequency, the average length) are
// kept exactly by every write, so IDF and length normalisation always
// reflect the collection as it is, whatever a search's source filter. A
// query scores only the postings of its terms, into a per-slot
// accumulator; its cost grows with how many chunks share its terms.
//
// Dense vectors, when the collection has an embedder, are stored twice:
// normalised float32, and quantised to int8 with a per-vector scale (the
// largest component maps to ±127). A dense search quantises the query to
// int16, scans every vector with an integer dot product (an AVX2 kernel on
// amd64: a quarter of float32's memory traffic), keeps the best
// Rescore×Candidates, and rescores those in float32, so returned scores
// are exact cosines and only the candidate choice is approximate. Where
// AVX2 is missing (or with the purego build tag) the scan is float32
// throughout: exact, and 6-8× slower on 100,000 × 384 (p50 about 15 ms
// against 2 ms).
//
// The lists of a query are fused by Reciprocal Rank Fusion (rag.FuseLists),
// as Qdrant's Query API fuses prefetches.
package vecindex
