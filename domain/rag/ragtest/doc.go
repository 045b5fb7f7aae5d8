// Package ragtest measures retrieval quality and holds small components for
// tests of retrieval-augmented answers. Like domain, it imports the standard
// library only.
//
// RunIndexTests is the contract every rag.Index runs: storage, dense
// search, and sparse (BM25) and hybrid (RRF) search, checked against hand
// computations. MemoryIndex is its exact reference implementation.
//
// RunRecall is the quality floor of a pairing of index, splitter and
// embedder: it syncs the sample corpus in docs/corpus through a
// rag.Ingester, asks a question set through a rag.Retriever and checks
// recall@4 and MRR of the same-language questions (Evaluate, Evaluation).
// The sets are the labelled questions and the paraphrased and off-topic
// ones, each in a dev half and a held-out test half (docs/corpus/README.md);
// LoadSample reads the corpus, Sample.Load a set. adapters/postgres runs it
// on the production path (document loader and splitter, embedded index);
// this package on its own components. SectionSplitter cuts one chunk per
// "## " section; HashEmbedder is a dense rag.Embedder for tests (hashed
// words and Hangul bigrams).
package ragtest
