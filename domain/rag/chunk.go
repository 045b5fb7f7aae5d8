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
// whose text hashes to hash: the UUIDv5 of the three, NUL-separated, in
// canonical text form.
func ChunkID(source string, index int, hash string) string {
	return domain.NameUUID(chunkNamespace, source+"\x00"+strconv.Itoa(index)+"\x00"+hash).String()
}

// TextHash returns the hex SHA-256 of text.
func TextHash(text string) string {
	sum := sha256.Sum256([]byte(text))
	return hex.EncodeToString(sum[:])
}

// NewChunk returns the index-th chunk of source with its Hash and ID
// filled in and a copy of metadata.
func NewChunk(source, title string, index int, text string, metadata map[string]string) Chunk {
	h := TextHash(text)
	return Chunk{
		ID:       ChunkID(source, index, h),
		Source:   source,
		Title:    title,
		Index:    index,
		Text:     text,
		Hash:     h,
		Metadata: maps.Clone(metadata),
	}
}
