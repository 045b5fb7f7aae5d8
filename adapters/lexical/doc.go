// Package lexical is the hashing embedder: no model, no server, no
// download. It hashes a text's words and character n-grams into a vector
// of fixed dimension (the "hashing trick"), so texts that share words or
// parts of words point in similar directions.
//
// It was Parley's default retriever and no longer is: without term
// weighting, words every document shares count as much as the one that
// matters, and a Korean chunk's ~1,500 features collide in 384 slots. On
// the sample corpus it finds the answering document for 0.85 of the dev
// paraphrases (MRR 0.77) where BM25 over term vectors (domain/rag,
// text.Terms) finds 0.95 (MRR 0.91) — `parley-bench rag` prints both. It
// stays as PARLEY_EMBEDDER=lexical, a dense list fused with BM25, and as
// the benchmark's record of how retrieval was.
//
// The recipe, fixed so vectors stay comparable across versions (change it
// and the Name must change): NFKC normalisation and Unicode lower-casing;
// words are maximal runs of letters, digits and marks; each word gives a
// word feature (weight 1) and its character 2-, 3- and 4-grams with '<'
// and '>' marking its ends (weight 0.5 each), which lets Korean words
// match across attached particles (청년이, 청년은 share 청년). Each
// feature is hashed with 64-bit FNV-1a to a component and a sign (signed
// hashing, so collisions cancel on average), weighted by 1 + ln(tf)
// (sublinear term frequency), and the vector is L2-normalised. A text with
// no letters or digits falls back to its other non-space characters; only
// an all-space text gives the zero vector.
package lexical
