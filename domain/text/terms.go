package text

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// TermKind tells the two kinds of Terms apart.
type TermKind byte

const (
	// Word is a whole word: a Latin word lower-cased and lightly stemmed, a
	// number, or a Korean word with a trailing particle stripped.
	Word TermKind = 'w'
	// Gram is two adjacent syllables of a Korean (or Chinese or Japanese)
	// word, so that compounds and inflected forms match on their parts.
	Gram TermKind = 'g'
)

// Terms calls emit with the match terms of s, in order, repeats included:
// what retrieval indexes and what the offline generator matches questions
// with. It suits Korean and English alike:
//
//   - Text is lower-cased and cut into runs of one script: letters, digits,
//     or syllables of an unspaced script (IsUnspaced), so "20만" is "20"
//     and "만", and "covid19" is "covid" and "19".
//   - A Latin word gives one Word term, stemmed by Stem, unless it is a
//     stop word or a single letter; an apostrophe ends a word ("parent's"
//     is "parent").
//   - A number gives one Word term with its thousands separators removed
//     and its decimal point kept ("700,000" is "700000", "1.5" stays).
//   - A Korean word gives a Word term with its trailing particle stripped
//     (StripParticle: "청년이" is "청년") unless that is a stop word
//     (question words, particles standing alone), and a Gram term for each
//     pair of adjacent syllables of the whole word, except the endings that
//     nearly every sentence or question has ("니다", "나요"). A word of one
//     syllable gives only its Word term.
//
// Terms keeps nothing between calls and is safe for concurrent use.
func Terms(s string, emit func(kind TermKind, term string)) {
	s = strings.ToLower(strings.ToValidUTF8(s, " "))
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch c := classOf(r); c {
		case classDigit:
			j := numberEnd(s, i)
			emit(Word, strings.ReplaceAll(s[i:j], ",", ""))
			i = j
		case classLetter, classUnspaced:
			j := i + n
			for j < len(s) {
				r2, n2 := utf8.DecodeRuneInString(s[j:])
				if c2 := classOf(r2); c2 != c && c2 != classMark {
					break
				}
				j += n2
			}
			if c == classLetter {
				latinTerm(s[i:j], emit)
			} else {
				unspacedTerms(s[i:j], emit)
			}
			i = j
		default:
			i += n
		}
	}
}

type runeClass int

const (
	classOther runeClass = iota
	classLetter
	classDigit
	classUnspaced
	classMark
)

func classOf(r rune) runeClass {
	switch {
	case r < utf8.RuneSelf && ('a' <= r && r <= 'z'):
		return classLetter
	case r < utf8.RuneSelf && ('0' <= r && r <= '9'):
		return classDigit
	case r < utf8.RuneSelf:
		return classOther
	case IsUnspaced(r):
		return classUnspaced
	case unicode.IsLetter(r):
		return classLetter
	case unicode.IsDigit(r):
		return classDigit
	case unicode.IsMark(r):
		return classMark
	}
	return classOther
}

// numberEnd returns where the number starting at i ends: digits, with a
// ',' or '.' between two digits kept inside.
func numberEnd(s string, i int) int {
	j := i
	for j < len(s) {
		r, n := utf8.DecodeRuneInString(s[j:])
		switch {
		case unicode.IsDigit(r):
			j += n
			continue
		case (r == ',' || r == '.') && j+1 < len(s):
			if r2, _ := utf8.DecodeRuneInString(s[j+1:]); unicode.IsDigit(r2) {
				j++
				continue
			}
		}
		break
	}
	return j
}

func latinTerm(w string, emit func(TermKind, string)) {
	if utf8.RuneCountInString(w) < 2 || stopWords[w] {
		return
	}
	emit(Word, Stem(w))
}

func unspacedTerms(w string, emit func(TermKind, string)) {
	if stem := StripParticle(w); !koreanStopWords[stem] && !isQuestionEnding(stem) {
		emit(Word, stem)
	}
	prevAt := -1
	for at, r := range w {
		if !IsUnspaced(r) { // a combining mark inside the run
			continue
		}
		if prevAt >= 0 {
			if g := w[prevAt : at+utf8.RuneLen(r)]; !stopGrams[g] {
				emit(Gram, g)
			}
		}
		prevAt = at
	}
}

// questionEndings end the predicates of Korean questions and polite
// statements ("있나요", "받을까요", "돼요"): such a word says how something
// is asked, not what about, and gives no Word term.
var questionEndings = []string{"나요", "까요", "세요", "어요", "아요", "해요", "돼요", "예요", "에요", "워요", "데요", "지요", "가요", "니까", "을까", "할까", "는지", "은지", "죠"}

func isQuestionEnding(w string) bool {
	for _, e := range questionEndings {
		if strings.HasSuffix(w, e) && w != e {
			return true
		}
	}
	return false
}

// particles are the Korean particles (josa) StripParticle removes, longest
// first so that "에서는" is tried before "는".
var particles = []string{
	"에서부터", "으로부터",
	"에서는", "으로는", "에게서", "으로서", "으로써", "이라도", "이라고", "이라는", "에서도", "에게는", "까지는", "부터는", "한테서", "이지만", "에서의",
	"에서", "에게", "한테", "께서", "으로", "까지", "부터", "보다", "처럼", "마다", "이나", "이랑", "하고", "에는", "에도", "와는", "과는",
	"로는", "로서", "로써", "이며", "이고", "이란", "라고", "라는", "이든", "조차", "밖에", "만큼", "이요", "이면",
	"은", "는", "이", "가", "을", "를", "에", "의", "와", "과", "도", "만", "로", "나", "랑",
}

// StripParticle returns a Korean word without its trailing particle: the
// longest one of particles that leaves at least one syllable, or two for
// a particle of one syllable (so "나이" and "제도" keep their last
// syllable while "청년이" loses it). Other words are returned as they are.
func StripParticle(w string) string {
	n := -1 // counted once a particle ends w
	for _, p := range particles {
		if !strings.HasSuffix(w, p) {
			continue
		}
		if n < 0 {
			n = utf8.RuneCountInString(w)
		}
		// Hangul syllables are three bytes each.
		pn := len(p) / 3
		min := 1
		if pn == 1 {
			min = 2
		}
		if n-pn >= min {
			return w[:len(w)-len(p)]
		}
	}
	return w
}

// Stem is a light English stemmer for Terms: it folds plurals ("applies"
// → "apply", "loans" → "loan"), then "-ing" and "-ed" when a vowel stays
// before them, undoubling the consonant they doubled ("stopped" →
// "stop"), and finally a final "e" (not "ee") of words over three letters, so that
// "move", "moved", "moves" and "moving" all give "mov". Words of three
// letters or fewer and words with non-ASCII letters are returned as they
// are.
func Stem(w string) string {
	if len(w) <= 3 {
		return w
	}
	for i := 0; i < len(w); i++ {
		if w[i] >= utf8.RuneSelf {
			return w
		}
	}
	switch {
	case strings.HasSuffix(w, "ies") && len(w) > 4:
		w = w[:len(w)-3] + "y"
	case strings.HasSuffix(w, "sses"):
		w = w[:len(w)-2]
	case strings.HasSuffix(w, "ss"), strings.HasSuffix(w, "us"), strings.HasSuffix(w, "is"):
	case strings.HasSuffix(w, "s"):
		w = w[:len(w)-1]
	}
	switch {
	case strings.HasSuffix(w, "ied") && len(w) > 4:
		w = w[:len(w)-3] + "y"
	case strings.HasSuffix(w, "ing") && len(w) >= 6 && hasVowel(w[:len(w)-3]):
		w = undouble(w[:len(w)-3])
	case strings.HasSuffix(w, "ed") && len(w) >= 5 && hasVowel(w[:len(w)-2]):
		w = undouble(w[:len(w)-2])
	}
	if len(w) > 3 && strings.HasSuffix(w, "e") && !strings.HasSuffix(w, "ee") {
		w = w[:len(w)-1]
	}
	return w
}

func hasVowel(s string) bool { return strings.ContainsAny(s, "aeiouy") }

// undouble turns a doubled final consonant into one ("stopp" → "stop"),
// except s and z, and l in short words ("call" stays, "counsell" does not).
func undouble(w string) string {
	n := len(w)
	if n < 2 || w[n-1] != w[n-2] || strings.IndexByte("aeiousz", w[n-1]) >= 0 || (w[n-1] == 'l' && n <= 5) {
		return w
	}
	return w[:n-1]
}

func set(words string) map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(words) {
		m[w] = true
	}
	return m
}

// stopWords are English words too common to tell texts apart, and the
// pieces contractions leave.
var stopWords = set(`a an and are as at be been being but by can could do does did doing for from had has have having he her
	hers him his how i if in into is it its itself me my myself no not nor of on or our ours she so than that the their
	theirs them then there these they this those to too up us was we were what when where which who whom why will with
	would you your yours about also any each may might must only other over such very just all am should shall
	ll re ve don doesn didn isn aren wasn weren won wouldn shouldn couldn haven hasn hadn`)

// koreanStopWords are Korean words, after StripParticle, that say nothing
// about a text's subject: question words, pronouns, particles standing
// alone after a number or a Latin word, and bound nouns.
var koreanStopWords = set(`은 는 이 가 을 를 에 의 와 과 도 만 로 나 랑 요 및 또 또는 그 저 것 수 등 더 좀 때 중 제 내
	누가 누구 무엇 뭐 뭔가 뭘 어디 어디서 언제 어떻게 어떤 얼마 얼마나 왜 몇 어느 이런 그런 저런 우리 저희 제가 내가`)

// stopGrams are Korean syllable pairs of verb endings found in nearly
// every sentence, statement or question, and of question words; matching
// them says nothing about a text's subject.
var stopGrams = set(`니다 습니 입니 합니 됩니 나요 까요 세요 어요 아요 해요 돼요 예요 에요 워요 데요 지요 는지 을까 할까
	있나 되나 인가 가요 는데 인데 어떻 떻게 얼마 마나 누가 무엇 어디 언제`)
