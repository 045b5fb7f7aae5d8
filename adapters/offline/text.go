package offline

import (
	"math"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/parleychat/parley/domain/text"
)

// maxPieceRunes is the longest piece SplitTokens emits for one word: longer
// words are cut, the way a model's tokenizer cuts rare or long words.
const maxPieceRunes = 6

// zeroWidthJoiner glues emoji sequences together; SplitTokens never cuts
// next to it.
const zeroWidthJoiner = '\u200d'

// SplitTokens splits s into the pieces the generators of this package
// stream: each word with the white space that follows it, and words longer
// than six runes cut into pieces of six. It never splits a rune, never cuts
// before a combining mark or variation selector, and never cuts on either
// side of a zero-width joiner, so every piece of a valid UTF-8 string is
// valid UTF-8 and the pieces concatenate to s. It returns nil for "".
func SplitTokens(s string) []string {
	var (
		pieces  []string
		start   int  // byte offset where the current piece begins
		runes   int  // non-space runes of the current word in the current piece
		word    bool // the current piece holds a non-space rune
		inSpace bool // the current piece ends in white space
		prev    rune
	)
	for i, r := range s {
		switch {
		case unicode.IsSpace(r):
			inSpace = true
		case inSpace && word:
			pieces = append(pieces, s[start:i])
			start, runes, inSpace = i, 1, false
		case runes >= maxPieceRunes && canCutBetween(prev, r):
			pieces = append(pieces, s[start:i])
			start, runes = i, 1
		default:
			runes++
			word, inSpace = true, false
		}
		prev = r
	}
	if start < len(s) {
		pieces = append(pieces, s[start:])
	}
	return pieces
}

// canCutBetween reports whether a piece may end between prev and next
// without tearing a grapheme apart in the common cases.
func canCutBetween(prev, next rune) bool {
	if prev == zeroWidthJoiner || next == zeroWidthJoiner {
		return false
	}
	return !unicode.In(next, unicode.Mn, unicode.Me, unicode.Mc, unicode.Variation_Selector)
}

// Term weights: a shared word counts twice as much as a shared syllable
// pair.
const (
	wordWeight = 1.0
	gramWeight = 0.5
)

// features returns the distinct match terms of s (text.Terms, the ones
// retrieval indexes) with their weights.
func features(s string) map[string]float64 {
	f := make(map[string]float64)
	text.Terms(s, func(k text.TermKind, t string) {
		if k == text.Gram {
			f["g:"+t] = gramWeight
		} else {
			f["w:"+t] = wordWeight
		}
	})
	return f
}

// headingLine matches a Markdown heading or a setext heading's underline.
var headingLine = regexp.MustCompile(`(?m)^ {0,3}(?:#{1,6}(?:[ \t].*)?|=+[ \t]*|-{2,}[ \t]*)$`)

// withoutHeadings blanks the Markdown heading lines of a passage, which
// are titles, not statements to quote: a heading like "Who can apply" says
// nothing about who can.
func withoutHeadings(s string) string {
	return headingLine.ReplaceAllString(s, "")
}

// scorer ranks sentences of one pool against a question: the score of a
// sentence is the sum, over the features it shares with the question, of
// each feature's weight times its inverse document frequency in the pool,
// so features found in every sentence count least.
type scorer struct {
	question map[string]float64
	df       map[string]int
	n        int
}

// newScorer prepares to score the sentences of pool against question.
func newScorer(question string, pool []map[string]float64) *scorer {
	s := &scorer{question: features(question), df: make(map[string]int), n: len(pool)}
	for _, f := range pool {
		for k := range f {
			if _, ok := s.question[k]; ok {
				s.df[k]++
			}
		}
	}
	return s
}

// score returns the relevance of a sentence with features f; zero means it
// shares nothing with the question.
func (s *scorer) score(f map[string]float64) float64 {
	var total float64
	for k, w := range s.question {
		if _, ok := f[k]; ok {
			total += w * (1 + math.Log(float64(s.n)/float64(s.df[k])))
		}
	}
	return total
}

// clip shortens s to at most n runes, cutting at a space when one is near
// and marking the cut with an ellipsis.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	rs := []rune(s)[:n]
	cut := len(rs)
	for i := len(rs) - 1; i > n*3/4; i-- {
		if rs[i] == ' ' {
			cut = i
			break
		}
	}
	return strings.TrimRight(string(rs[:cut]), " ") + "…"
}

// normalize folds case and white space, to compare sentences for equality.
func normalize(s string) string {
	return strings.Join(strings.Fields(strings.ToLower(s)), " ")
}
