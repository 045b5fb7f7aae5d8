package document

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/parleychat/parley/domain/rag"
	"github.com/parleychat/parley/domain/text"
)

// DefaultMaxTokens is SplitterConfig.MaxTokens's default: room for a
// section of a page or two, well within what embedding models take.
const DefaultMaxTokens = 400

// TokenCounter counts a text's tokens (adapters/tokens).
type TokenCounter interface {
	Count(text string) int
}

// SplitterConfig sizes chunks. The zero value is the default.
type SplitterConfig struct {
	// MaxTokens is the most tokens of a chunk's text. A section that fits
	// is one chunk; a longer one is cut between paragraphs, else between
	// sentences, else between words. 0 means DefaultMaxTokens.
	MaxTokens int
}

// Splitter is the rag.Splitter ingest uses: it cuts a document at its
// Markdown headings (HTML headings are Markdown by then), one section per
// heading, and sizes sections in tokens, so that a Korean and an English
// document of the same structure give the same chunks whatever their
// characters. Each section carries its heading path, outer headings first
// (a document's leading "# Title" is its title, not part of the path),
// which the Ingester indexes with the chunk's text. Headings inside fenced
// code blocks are text. Safe for concurrent use if its counter is.
type Splitter struct {
	max   int
	count TokenCounter
}

var _ rag.Splitter = (*Splitter)(nil)

// NewSplitter returns a Splitter counting tokens with count.
func NewSplitter(count TokenCounter, cfg SplitterConfig) (*Splitter, error) {
	if count == nil {
		return nil, errors.New("splitter: no token counter")
	}
	switch {
	case cfg.MaxTokens < 0:
		return nil, fmt.Errorf("splitter: MaxTokens %d is negative (0 means %d)", cfg.MaxTokens, DefaultMaxTokens)
	case cfg.MaxTokens == 0:
		cfg.MaxTokens = DefaultMaxTokens
	}
	return &Splitter{max: cfg.MaxTokens, count: count}, nil
}

var (
	setextUnderline = regexp.MustCompile(`^ {0,3}(=+|-+)[ \t]*$`)
	atxLevel        = regexp.MustCompile(`^ {0,3}(#{1,6})[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$`)
	blankLine       = regexp.MustCompile(`\n[ \t]*\n`)
)

// Split implements rag.Splitter.
func (s *Splitter) Split(doc string) ([]rag.Section, error) {
	lines := strings.Split(strings.ReplaceAll(doc, "\r\n", "\n"), "\n")
	var (
		out     []rag.Section
		path    [7]string // heading text by level; 0 unused
		body    []string
		inFence bool
		sawText bool // a heading or text came before: a first "# " is the title otherwise
	)
	flush := func() {
		s.add(&out, headingPath(path[:]), strings.Join(body, "\n"))
		body = body[:0]
	}
	heading := func(level int, title string) {
		flush()
		if level == 1 && !sawText {
			sawText = true
			return // the document's title
		}
		sawText = true
		path[level] = title
		clear(path[level+1:])
	}
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if fence.MatchString(line) {
			inFence = !inFence
		}
		if !inFence {
			if m := atxLevel.FindStringSubmatch(line); m != nil {
				heading(len(m[1]), strings.TrimSpace(m[2]))
				continue
			}
			// A setext heading: a line of text underlined by = (level 1)
			// or - (level 2), not a list item or a paragraph's end.
			if i+1 < len(lines) && strings.TrimSpace(line) != "" && (len(body) == 0 || strings.TrimSpace(body[len(body)-1]) == "") &&
				setextUnderline.MatchString(lines[i+1]) && !strings.HasPrefix(strings.TrimSpace(line), "- ") {
				level := 1
				if strings.Contains(lines[i+1], "-") {
					level = 2
				}
				heading(level, strings.TrimSpace(line))
				i++
				continue
			}
		}
		if strings.TrimSpace(line) != "" {
			sawText = true
		}
		body = append(body, line)
	}
	flush()
	return out, nil
}

// headingPath joins the set headings of path, outermost first.
func headingPath(path []string) string {
	var parts []string
	for _, p := range path {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, rag.SectionSeparator)
}

// add appends section text under heading to out, cut into pieces of at
// most s.max tokens: whole paragraphs where they fit, else sentences,
// else words.
func (s *Splitter) add(out *[]rag.Section, heading, body string) {
	body = strings.TrimSpace(body)
	if body == "" {
		return
	}
	if s.count.Count(body) <= s.max {
		*out = append(*out, rag.Section{Heading: heading, Text: body})
		return
	}
	var piece []string
	emit := func(sep string) {
		if len(piece) > 0 {
			*out = append(*out, rag.Section{Heading: heading, Text: strings.Join(piece, sep)})
			piece = piece[:0]
		}
	}
	fits := func(parts []string, sep string) bool { return s.count.Count(strings.Join(parts, sep)) <= s.max }
	for _, para := range paragraphs(body) {
		if fits(append(piece, para), "\n\n") {
			piece = append(piece, para)
			continue
		}
		emit("\n\n")
		if fits([]string{para}, "") {
			piece = append(piece, para)
			continue
		}
		// A paragraph too long on its own: by sentences, then words.
		for _, sent := range text.Sentences(para) {
			if fits(append(piece, sent), " ") {
				piece = append(piece, sent)
				continue
			}
			emit(" ")
			for _, w := range strings.Fields(sent) {
				if len(piece) > 0 && !fits(append(piece, w), " ") {
					emit(" ")
				}
				piece = append(piece, w)
			}
		}
		emit(" ")
	}
	emit("\n\n")
}

// paragraphs splits text at blank lines, each paragraph trimmed.
func paragraphs(text string) []string {
	var out []string
	for _, p := range blankLine.Split(text, -1) {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
