package rag

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"strconv"

	"github.com/parleychat/parley/domain"
)

// chunkNamespace is the UUID namespace of chunk IDs. Changing it changes
// every chunk ID, so every document would be re-embedded on next ingest.
var chunkNamespace = domain.MustParseUUID("6f1c2d4e-8a3b-5c7d-9e0f-1a2b3c4d5e6f")

// ChunkID returns the deterministic ID of the index-th chunk of source
// whose embedded text (EmbeddingText) hashes to hash: the UUIDv5 of the
// three, NUL-separated, in canonical text form. An unchanged ID thus means
// the chunk's stored vector is still the right one.
func ChunkID(source string, index int, hash string) string {
	return domain.NameUUID(chunkNamespace, source+"\x00"+strconv.Itoa(index)+"\x00"+hash).String()
}

// TextHash returns the hex SHA-256 of text.
func TextHash(text string) string {
	sum := sha256.Sum256([]byte(text))
	return hex.EncodeToString(sum[:])
}

// EmbeddingText is what the Ingester embeds for a chunk: its document's
// title, a blank line and its text, so that every chunk, not only the
// first, carries what its document is about; just the text when there is
// no title. On the sample corpus it lifts recall@4 of the lexical embedder
// from 0.845 to 0.879 (see adapters/postgres's recall test).
func EmbeddingText(title, text string) string {
	if title == "" {
		return text
	}
	return title + "\n\n" + text
}

// NewChunk returns the index-th chunk of source with its Hash and ID
// filled in and a copy of metadata. The ID covers the title as well as the
// text, since both are embedded.
func NewChunk(source, title string, index int, text string, metadata map[string]string) Chunk {
	return Chunk{
		ID:       ChunkID(source, index, TextHash(EmbeddingText(title, text))),
		Source:   source,
		Title:    title,
		Index:    index,
		Text:     text,
		Hash:     TextHash(text),
		Metadata: maps.Clone(metadata),
	}
}
