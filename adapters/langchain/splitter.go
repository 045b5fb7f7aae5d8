package langchain

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/tmc/langchaingo/textsplitter"

	"github.com/parleychat/parley/domain/rag"
)

// Splitter defaults, in characters (runes): about 250-400 words of
// English or 300-500 eojeol of Korean per chunk.
const (
	DefaultChunkSize    = 800
	DefaultChunkOverlap = 100
)

// boundary marks sentence ends before splitting. It is a private-use
// character, removed from the chunks afterwards and not counted in their
// length.
const boundary = "\uE000"

// sentenceEnds inserts boundary after each sentence end: ". " (which also
// covers Korean "다. "), "? ", "! ", and the CJK full stop and full-width
// marks, which need no space after them.
var sentenceEnds = strings.NewReplacer(
	". ", ". "+boundary,
	"? ", "? "+boundary,
	"! ", "! "+boundary,
	"。", "。"+boundary,
	"？", "？"+boundary,
	"！", "！"+boundary,
)

// SplitterConfig sizes chunks. The zero value is the default.
type SplitterConfig struct {
	// ChunkSize is the most characters (runes, not bytes) in a chunk,
	// unless one word is longer. 0 means DefaultChunkSize.
	ChunkSize int
	// ChunkOverlap is about how many characters of the end of a chunk are
	// repeated at the start of the next, in whole pieces (sentences, lines).
	// 0 means DefaultChunkOverlap; negative means none. It must be below
	// ChunkSize.
	ChunkOverlap int
}

// Splitter cuts documents into chunks for embedding with langchaingo's
// RecursiveCharacter splitter: at paragraph breaks first, then line
// breaks, then sentence ends, then spaces, and inside a word only when one
// word exceeds ChunkSize. Lengths are counted in runes, and sentence
// separators are kept with the sentence they end (langchaingo would
// otherwise drop them, or move them to the next chunk's start). Its
// sections have no heading. Safe for concurrent use.
//
// Ingest no longer uses it: adapters/document's Splitter cuts at Markdown
// headings and sizes chunks in tokens, which treats Korean (about three
// times the information per character) and English alike. parley-bench
// keeps it to measure retrieval as it was.
type Splitter struct {
	rc textsplitter.RecursiveCharacter
}

// NewSplitter returns a Splitter for cfg.
func NewSplitter(cfg SplitterConfig) (*Splitter, error) {
	if cfg.ChunkSize == 0 {
		cfg.ChunkSize = DefaultChunkSize
	}
	switch {
	case cfg.ChunkOverlap == 0:
		cfg.ChunkOverlap = DefaultChunkOverlap
	case cfg.ChunkOverlap < 0:
		cfg.ChunkOverlap = 0
	}
	if cfg.ChunkSize < 1 {
		return nil, fmt.Errorf("splitter: ChunkSize %d must be positive", cfg.ChunkSize)
	}
	if cfg.ChunkOverlap >= cfg.ChunkSize {
		return nil, fmt.Errorf("splitter: ChunkOverlap %d must be below ChunkSize %d", cfg.ChunkOverlap, cfg.ChunkSize)
	}
	return &Splitter{rc: textsplitter.NewRecursiveCharacter(
		textsplitter.WithChunkSize(cfg.ChunkSize),
		textsplitter.WithChunkOverlap(cfg.ChunkOverlap),
		textsplitter.WithSeparators([]string{"\n\n", "\n", boundary, " ", ""}),
		textsplitter.WithLenFunc(runeLen),
		textsplitter.WithKeepSeparator(false),
	)}, nil
}

func runeLen(s string) int {
	return utf8.RuneCountInString(s) - strings.Count(s, boundary)
}

// Split returns text's chunks, trimmed of surrounding space; none for a
// text of spaces only.
func (s *Splitter) Split(text string) ([]rag.Section, error) {
	text = strings.ReplaceAll(text, "\r\n", "\n")
	text = sentenceEnds.Replace(strings.ReplaceAll(text, boundary, ""))
	parts, err := s.rc.SplitText(text)
	if err != nil {
		return nil, fmt.Errorf("split: %w", err)
	}
	var out []rag.Section
	for _, p := range parts {
		if p = strings.TrimSpace(strings.ReplaceAll(p, boundary, "")); p != "" {
			out = append(out, rag.Section{Text: p})
		}
	}
	return out, nil
}
