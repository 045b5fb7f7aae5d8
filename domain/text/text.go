// Package text holds the plain-text helpers the offline generator, the
// extractive summariser and document ingest share: sentence splitting that
// works for Korean and English, the rune classes their word matching is
// built on, and telling Korean from English.
package text

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// sentenceEnds are the runes that end a sentence when followed by white
// space or the end of the text.
const sentenceEnds = ".!?…"

// fullWidthEnds end a sentence even when the next rune is not a space, as
// is usual in Chinese and Japanese text.
const fullWidthEnds = "。！？"

// closers may follow a sentence's final punctuation and still belong to it.
const closers = "\"')]}’”」』"

// Sentences splits text into sentences, each with its white space collapsed
// to single spaces. Blank lines end a sentence; single line breaks do not,
// because retrieved chunks are often hard-wrapped. Invalid UTF-8 becomes
// U+FFFD. Fragments without a letter or digit are dropped.
func Sentences(text string) []string {
	text = strings.ToValidUTF8(text, "\uFFFD")
	var out []string
	add := func(s string) {
		s = strings.Join(strings.Fields(s), " ")
		if strings.IndexFunc(s, IsWordRune) >= 0 {
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

// IsWordRune reports whether r belongs to a word: a letter, digit or mark.
func IsWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)
}

// IsUnspaced reports whether r is from a script whose words carry particles
// and endings without a space (Korean) or are not separated by spaces at all
// (Chinese, Japanese). Such text is matched by character bigrams as well as
// by words.
func IsUnspaced(r rune) bool {
	return unicode.In(r, unicode.Hangul, unicode.Han, unicode.Hiragana, unicode.Katakana)
}

// Language returns "ko" if at least a fifth of s's letters are Hangul,
// "en" if at least half are Latin, and "" otherwise: no letters, or mostly
// another script. Hangul weighs four times a Latin letter because a
// syllable carries what several letters do, and so that a Korean sentence
// keeps its language when it names English terms (a URL, a product, a
// programme), while an English one that quotes a Korean word keeps its own
// unless it is very short: "What is 월세?" has two Hangul among eight
// letters, and reads as Korean.
func Language(s string) string {
	var letters, hangul, latin int
	for _, r := range s {
		if !unicode.IsLetter(r) {
			continue
		}
		letters++
		switch {
		case unicode.Is(unicode.Hangul, r):
			hangul++
		case unicode.Is(unicode.Latin, r):
			latin++
		}
	}
	switch {
	case letters == 0:
		return ""
	case hangul*5 >= letters:
		return "ko"
	case latin*2 >= letters:
		return "en"
	}
	return ""
}

// IsKorean reports whether s is written in Korean by Language, so an
// answer to it should be in Korean.
func IsKorean(s string) bool { return Language(s) == "ko" }
