// Package ragtest measures retrieval quality and holds small components for
// tests of retrieval-augmented answers. Like domain, it imports the standard
// library only.
//
// RunRecall is the quality floor every embedder and index pairing must
// pass: it ingests the sample corpus in docs/corpus (one chunk per section),
// asks the labelled questions of docs/corpus/questions.jsonl and checks
// that, for enough of them, the expected document is among the K chunks
// retrieved (recall@K). It takes any rag.Embedder and rag.Index, so the same
// test runs against the production lexical embedder and index and against
// the test components here.
//
// MemoryIndex is an exact in-memory rag.Index (cosine similarity over every
// stored vector); HashEmbedder is a lexical rag.Embedder for tests (hashed
// words and Hangul bigrams).
package ragtest
