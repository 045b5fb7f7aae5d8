package rag

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"strconv"
	"strings"

	"github.com/parleychat/parley/domain"
)

// chunkNamespace is the UUID namespace of chunk IDs. Changing it changes
// every chunk ID, so every document would be re-embedded on next ingest.
var chunkNamespace = domain.MustParseUUID("6f1c2d4e-8a3b-5c7d-9e0f-1a2b3c4d5e6f")

// MetaSection is the Metadata key of a chunk's section: the heading path
// of the part of its document it comes from, outermost first, joined by
// SectionSeparator (e.g. "Loan terms" or "Stages > The first stage").
const MetaSection = "section"

// SectionSeparator joins the headings of a section path.
const SectionSeparator = " > "

// ChunkID returns the deterministic ID of the index-th chunk of source
// whose indexed text (IndexText) hashes to hash: the UUIDv5 of the three,
// NUL-separated, in canonical text form. An unchanged ID thus means the
// chunk's stored vectors are still the right ones.
func ChunkID(source string, index int, hash string) string {
	return domain.NameUUID(chunkNamespace, source+"\x00"+strconv.Itoa(index)+"\x00"+hash).String()
}

// TextHash returns the hex SHA-256 of text.
func TextHash(text string) string {
	sum := sha256.Sum256([]byte(text))
	return hex.EncodeToString(sum[:])
}

// IndexText is what the Ingester indexes and embeds for a chunk: its
// document's title, its section's heading path and its text, one a
// paragraph, so that every chunk, not only the first, carries what its
// document and section are about. Empty parts are left out.
func IndexText(c Chunk) string {
	var parts []string
	for _, p := range []string{c.Title, c.Metadata[MetaSection], c.Text} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, "\n\n")
}

// NewChunk returns the index-th chunk of source with its Hash and ID
// filled in and a copy of metadata. The ID covers the title and section
// as well as the text, since all three are indexed.
func NewChunk(source, title string, index int, text string, metadata map[string]string) Chunk {
	c := Chunk{
		Source:   source,
		Title:    title,
		Index:    index,
		Text:     text,
		Hash:     TextHash(text),
		Metadata: maps.Clone(metadata),
	}
	c.ID = ChunkID(source, index, TextHash(IndexText(c)))
	return c
}
