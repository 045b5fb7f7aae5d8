// Package ragtest measures retrieval quality and holds small components for
// tests of retrieval-augmented answers. Like domain, it imports the standard
// library only.
//
// RunRecall is the quality floor every embedder and index pairing must
// pass: it syncs the sample corpus in docs/corpus through a rag.Ingester,
// asks the labelled questions of docs/corpus/questions.jsonl and checks
// that, for enough of them, the expected document is among the K chunks
// retrieved (recall@K). It takes any Ingester (embedder, index and
// splitter) and the documents as read, so adapters/postgres runs it on the
// production path (document loader, langchain splitter, lexical embedder,
// embedded index) and this package on its own components. LoadSample
// reads the corpus and questions; SectionSplitter cuts one chunk per
// section.
//
// MemoryIndex is an exact in-memory rag.Index (cosine similarity over every
// stored vector); HashEmbedder is a lexical rag.Embedder for tests (hashed
// words and Hangul bigrams).
package ragtest
