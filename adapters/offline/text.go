package offline

import (
	"math"
	"strings"
	"unicode"
	"unicode/utf8"
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

// sentenceEnds are the runes that end a sentence when followed by white
// space or the end of the text.
const sentenceEnds = ".!?…"

// fullWidthEnds end a sentence even when the next rune is not a space, as
// is usual in Chinese and Japanese text.
const fullWidthEnds = "。！？"

// closers may follow a sentence's final punctuation and still belong to it.
const closers = "\"')]}’”」』"

// sentences splits text into sentences, each with its white space collapsed
// to single spaces. Blank lines end a sentence; single line breaks do not,
// because retrieved chunks are often hard-wrapped. Invalid UTF-8 becomes
// U+FFFD. Fragments without a letter or digit are dropped.
func sentences(text string) []string {
	text = strings.ToValidUTF8(text, "\uFFFD")
	var out []string
	add := func(s string) {
		s = strings.Join(strings.Fields(s), " ")
		if strings.IndexFunc(s, isWordRune) >= 0 {
			out = append(out, s)
		}
	}
	start := 0
	for i := 0; i < len(text); {
		r, size := utf8.DecodeRuneInString(text[i:])
		next := i + size
		switch {
		case r == '\n':
			// A blank line (only spaces between two line breaks) ends a paragraph.
			j := next
			for j < len(text) && (text[j] == ' ' || text[j] == '\t' || text[j] == '\r') {
				j++
			}
			if j < len(text) && text[j] == '\n' {
				add(text[start:j])
				start = j + 1
				next = j + 1
			}
		case strings.ContainsRune(sentenceEnds, r) || strings.ContainsRune(fullWidthEnds, r):
			end := next
			for end < len(text) {
				c, n := utf8.DecodeRuneInString(text[end:])
				if !strings.ContainsRune(sentenceEnds+fullWidthEnds+closers, c) {
					break
				}
				end += n
			}
			c, _ := utf8.DecodeRuneInString(text[end:])
			if end == len(text) || unicode.IsSpace(c) || strings.ContainsRune(fullWidthEnds, r) {
				add(text[start:end])
				start = end
			}
			next = end
		}
		i = next
	}
	add(text[start:])
	return out
}

// isWordRune reports whether r belongs to a word: a letter, digit or mark.
func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)
}

// isUnspaced reports whether r is from a script whose words carry particles
// and endings without a space (Korean) or are not separated by spaces at all
// (Chinese, Japanese). Such text is matched by character bigrams as well as
// by words.
func isUnspaced(r rune) bool {
	return unicode.In(r, unicode.Hangul, unicode.Han, unicode.Hiragana, unicode.Katakana)
}

// Feature weights: a shared word counts twice as much as a shared bigram.
const (
	wordWeight   = 1.0
	bigramWeight = 0.5
)

// stopWords are English words too common to say anything about relevance.
var stopWords = map[string]bool{
	"a": true, "about": true, "an": true, "and": true, "are": true, "as": true, "at": true,
	"be": true, "by": true, "can": true, "could": true, "did": true, "do": true, "does": true,
	"for": true, "from": true, "has": true, "have": true, "how": true, "i": true, "in": true,
	"is": true, "it": true, "its": true, "me": true, "my": true, "of": true, "on": true,
	"or": true, "our": true, "should": true, "so": true, "that": true, "the": true,
	"their": true, "there": true, "these": true, "this": true, "to": true, "was": true,
	"we": true, "were": true, "what": true, "when": true, "where": true, "which": true,
	"who": true, "why": true, "will": true, "with": true, "would": true, "you": true,
	"your": true,
}

// stopBigrams are Korean verb endings shared by nearly every formal
// sentence; matching them says nothing about the topic.
var stopBigrams = map[string]bool{
	"니다": true, "습니": true, "입니": true, "합니": true, "니까": true,
	"세요": true, "어요": true, "아요": true, "이다": true, "한다": true, "있다": true,
}

// features returns the distinct match features of s with their weights:
// lower-cased words (English plurals folded, stop words dropped) and, inside
// words of unspaced scripts, character bigrams.
func features(s string) map[string]float64 {
	f := make(map[string]float64)
	for _, w := range strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !isWordRune(r) }) {
		rs := []rune(w)
		if len(rs) == 1 && !isUnspaced(rs[0]) || stopWords[w] {
			continue
		}
		f["w:"+stem(w)] = wordWeight
		for i := 1; i < len(rs); i++ {
			if isUnspaced(rs[i-1]) && isUnspaced(rs[i]) {
				if b := string(rs[i-1 : i+1]); !stopBigrams[b] {
					f["b:"+b] = bigramWeight
				}
			}
		}
	}
	return f
}

// stem folds the plural of a plain ASCII word: "documents" → "document".
func stem(w string) string {
	if len(w) > 3 && strings.HasSuffix(w, "s") && !strings.HasSuffix(w, "ss") {
		for _, r := range w {
			if r > unicode.MaxASCII {
				return w
			}
		}
		return w[:len(w)-1]
	}
	return w
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
