package chat

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/parleychat/parley/domain/room"
	"github.com/parleychat/parley/domain/text"
)

// Retriever finds the document passages an answer is grounded in.
type Retriever interface {
	// Retrieve returns the passages closest to question, best first. It
	// must return within a bounded time even when its index is down; on
	// failure it returns the error with a Retrieval still naming the
	// embedder and index it tried, for the record.
	Retrieve(ctx context.Context, question string) (Retrieval, error)
}

// Retrieval is what one Retrieve found, and with what.
type Retrieval struct {
	Passages []Passage // best first
	Embedder string    // how it retrieved, e.g. "terms-ko-en-1/bm25+ollama-nomic-embed-text"
	Index    string    // the index's name, e.g. "postgres"
	// The record of how the passages were found, copied into
	// RetrievalRecorded: the query rewrite if one ran, each retriever's
	// ranked list, and the fused order before diversification. Optional.
	Rewrite    *room.QueryRewrite
	Retrievers []room.RetrieverRun
	Fused      []room.RetrievalHit
}

// Notices the pipeline streams as an answer's first line when retrieval
// failed, so the reader knows the answer is not grounded in documents.
const (
	NoSourcesNotice   = "(No sources could be retrieved; answering without documents.)"
	NoSourcesNoticeKo = "(문서를 검색하지 못해 문서 없이 답변합니다.)"
)

// noSourcesNotice returns the notice in the question's language, followed
// by a blank line.
func noSourcesNotice(question string) string {
	if text.IsKorean(question) {
		return NoSourcesNoticeKo + "\n\n"
	}
	return NoSourcesNotice + "\n\n"
}

// canonicalPrompt is the form of a Prompt that PromptHash hashes. Its field
// names are part of the recorded hash's definition: never rename one. Every
// field of Prompt appears here (a test checks it).
type canonicalPrompt struct {
	System   string             `json:"system"`
	Summary  string             `json:"summary"`
	History  []canonicalTurn    `json:"history"`
	Context  []canonicalPassage `json:"context"`
	Question string             `json:"question"`
}

type canonicalTurn struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type canonicalPassage struct {
	Document string  `json:"document"`
	Title    string  `json:"title"`
	ChunkID  string  `json:"chunk_id"`
	Score    float64 `json:"score"`
	Text     string  `json:"text"`
}

// CanonicalPrompt returns p as canonical JSON: an object with the keys
// system, summary, history (objects with role and content), context
// (objects with document, title, chunk_id, score and text) and question,
// in that order, empty lists as [], strings without HTML escaping, numbers
// as encoding/json writes them (a score that is not a finite number as 0),
// and no trailing newline.
func CanonicalPrompt(p Prompt) []byte {
	c := canonicalPrompt{System: p.System, Summary: p.Summary, Question: p.Question,
		History: make([]canonicalTurn, len(p.History)), Context: make([]canonicalPassage, len(p.Context))}
	for i, t := range p.History {
		c.History[i] = canonicalTurn(t)
	}
	for i, ps := range p.Context {
		score := ps.Score
		if math.IsNaN(score) || math.IsInf(score, 0) {
			score = 0 // JSON has no such numbers
		}
		c.Context[i] = canonicalPassage{Document: ps.Document, Title: ps.Title, ChunkID: ps.ChunkID, Score: score, Text: ps.Text}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	// Strings (invalid UTF-8 becomes U+FFFD) and finite numbers always
	// encode.
	_ = enc.Encode(c)
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// PromptHash returns the hex SHA-256 of CanonicalPrompt(p): the record of
// exactly what a generator was given.
func PromptHash(p Prompt) string {
	sum := sha256.Sum256(CanonicalPrompt(p))
	return hex.EncodeToString(sum[:])
}

// SnippetRunes is how long a source's snippet is at most.
const SnippetRunes = 200

// sources lists passages as an answer's sources.
func sources(ps []Passage) []room.Source {
	out := make([]room.Source, len(ps))
	for i, p := range ps {
		out[i] = room.Source{Document: p.Document, Title: p.Title, ChunkID: p.ChunkID, Score: p.Score, Snippet: snippet(p.Text)}
	}
	return out
}

// hits lists passages for a RetrievalRecorded event.
func hits(ps []Passage) []room.RetrievalHit {
	out := make([]room.RetrievalHit, len(ps))
	for i, p := range ps {
		out[i] = room.RetrievalHit{ChunkID: p.ChunkID, Source: p.Document, Score: p.Score}
	}
	return out
}

// snippet is a passage's beginning as plain text: without links, images or
// HTML, white space collapsed, at most SnippetRunes runes.
func snippet(text string) string {
	s := strings.Join(strings.Fields(StripMarkup(text)), " ")
	if utf8.RuneCountInString(s) <= SnippetRunes {
		return s
	}
	r := []rune(s)[:SnippetRunes-1]
	return strings.TrimRightFunc(string(r), unicode.IsSpace) + "…"
}

// Patterns StripMarkup removes. Citations like [1] or [1][2] are not links:
// an inline link needs its "(" right after the "]", and a reference label
// of digits only is taken for a citation.
var (
	mdImage    = regexp.MustCompile(`!\[([^\]\n]*)\]\([^)\n]*\)`)
	mdLink     = regexp.MustCompile(`\[([^\]\n]+)\]\([^)\n]*\)`)
	mdRefImage = regexp.MustCompile(`!\[([^\]\n]*)\]\[[^\]\n]*\]`)
	mdRefLink  = regexp.MustCompile(`\[([^\]\n]+)\]\[(?:[^\]\n]*[^\]\n0-9 ][^\]\n]*)?\]`)
	mdRefDef   = regexp.MustCompile(`(?m)^[ \t]{0,3}\[[^\]\n]+\]:[ \t]*\S+.*$`)
	htmlTag    = regexp.MustCompile(`(?i)</?(?:img|a|iframe|script|style|object|embed|link|meta|source|video|audio|svg|image|form|input)\b[^>]*>`)
	autolink   = regexp.MustCompile(`(?i)<(?:[a-z][a-z0-9+.-]*:|www\.)[^>\s]*>`)
	// A URL ends before white space, quotes, brackets or parentheses, and
	// never with punctuation that ends the sentence around it.
	bareURL = regexp.MustCompile(`(?i)\b(?:(?:https?|ftp|file|data|javascript|vbscript):|www\.)[^\s<>"'()\[\]]*[^\s<>"'()\[\].,;:!?]`)
)

// LinkRemoved replaces a URL StripMarkup takes out of text.
const LinkRemoved = "(link removed)"

// StripMarkup removes from text what a chat client could fetch or follow
// when it renders an answer: Markdown images (kept as their alt text) and
// links (kept as their text), reference definitions, HTML tags that load
// or link something, and bare URLs (replaced by LinkRemoved). An injected
// instruction in a retrieved document cannot then make a reader's browser
// send data to an attacker's server. Other text, citations like [1]
// included, is left as it is.
func StripMarkup(text string) string {
	s := mdImage.ReplaceAllString(text, "$1")
	s = mdRefImage.ReplaceAllString(s, "$1")
	s = mdLink.ReplaceAllString(s, "$1")
	s = mdRefLink.ReplaceAllString(s, "$1")
	s = mdRefDef.ReplaceAllString(s, "")
	s = htmlTag.ReplaceAllString(s, "")
	s = autolink.ReplaceAllString(s, LinkRemoved)
	return bareURL.ReplaceAllString(s, LinkRemoved)
}
