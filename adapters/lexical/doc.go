// Package lexical is Parley's built-in embedder: no model, no server, no
// download. It hashes a text's words and character n-grams into a vector
// of fixed dimension (the "hashing trick"), so texts that share words or
// parts of words point in similar directions. It finds passages by their
// vocabulary, not their meaning, and is the default until an embedding
// model (Ollama or OpenAI, adapters/langchain) is configured.
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
