package memory

import (
	"maps"
	"math"
	"slices"
	"strings"
	"unicode"

	"github.com/parleychat/parley/domain/text"
)

// splitSentences cuts text into sentences with their white space
// collapsed: every line break ends one (chat turns are not hard-wrapped),
// and within a line text.Sentences decides.
func splitSentences(s string) []string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		out = append(out, text.Sentences(line)...)
	}
	return out
}

// stopWords say nothing about what a sentence is about.
var stopWords = map[string]bool{
	"a": true, "about": true, "also": true, "am": true, "an": true, "and": true, "any": true, "are": true,
	"as": true, "at": true, "be": true, "been": true, "but": true, "by": true, "can": true, "could": true,
	"did": true, "do": true, "does": true, "for": true, "from": true, "had": true, "has": true,
	"have": true, "he": true, "her": true, "his": true, "how": true, "i": true, "if": true, "in": true,
	"into": true, "is": true, "it": true, "its": true, "just": true, "me": true, "more": true,
	"my": true, "no": true, "not": true, "of": true, "on": true, "or": true, "our": true, "she": true,
	"should": true, "so": true, "some": true, "than": true, "that": true, "the": true, "their": true,
	"them": true, "then": true, "there": true, "these": true, "they": true, "this": true, "those": true,
	"to": true, "too": true, "very": true, "was": true, "we": true, "were": true, "what": true,
	"when": true, "where": true, "which": true, "who": true, "why": true, "will": true, "with": true,
	"would": true, "yes": true, "you": true, "your": true,
}

// stopBigrams are Korean endings and function words found in nearly every
// sentence.
var stopBigrams = map[string]bool{
	"니다": true, "습니": true, "입니": true, "합니": true, "니까": true, "세요": true, "어요": true,
	"아요": true, "이다": true, "한다": true, "있다": true, "있습": true, "그리": true, "리고": true,
	"하지": true, "지만": true, "에서": true, "으로": true, "에게": true, "해요": true, "나요": true,
}

// terms returns the distinct terms of a sentence with their weights:
// lower-cased words of two or more letters that are not stop words, and
// inside words of unspaced scripts their character bigrams. Terms with a
// digit (amounts, dates, ages) weigh double: they are what a summary most
// needs to keep.
func terms(s string) map[string]float64 {
	out := map[string]float64{}
	for _, w := range strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !text.IsWordRune(r) }) {
		rs := []rune(w)
		weight := 1.0
		if strings.IndexFunc(w, unicode.IsDigit) >= 0 {
			weight = 2
		}
		unspaced := false
		for i := 1; i < len(rs); i++ {
			if text.IsUnspaced(rs[i-1]) && text.IsUnspaced(rs[i]) {
				unspaced = true
				if b := string(rs[i-1 : i+1]); !stopBigrams[b] {
					out["b:"+b] = weight
				}
			}
		}
		if unspaced || stopWords[w] || len(rs) < 2 && weight == 1 {
			continue
		}
		out["w:"+w] = weight
	}
	return out
}

// termSets returns the terms of each sentence.
func termSets(sentences []string) []map[string]float64 {
	ts := make([]map[string]float64, len(sentences))
	for i, s := range sentences {
		ts[i] = terms(s)
	}
	return ts
}

// rank scores each sentence, given by its terms, by how informative it is
// within its text: the sum over its distinct terms of weight × idf, where
// idf favours terms found in few of the text's sentences, divided by the
// square root of its term count so that long sentences do not win by
// length alone.
func rank(ts []map[string]float64) []float64 {
	df := map[string]int{}
	for _, m := range ts {
		for t := range m {
			df[t]++
		}
	}
	n := float64(len(ts))
	scores := make([]float64, len(ts))
	for i, m := range ts {
		if len(m) == 0 {
			continue
		}
		// Summed in term order: map order would change the rounding, and
		// with it which of two tied sentences is kept.
		var sum float64
		for _, t := range slices.Sorted(maps.Keys(m)) {
			sum += m[t] * math.Log(1+n/float64(df[t]))
		}
		scores[i] = sum / math.Sqrt(float64(len(m)))
	}
	return scores
}

// centrality returns, for each sentence given by its terms, the sum of its
// cosine similarities (over distinct terms) with the others.
func centrality(ts []map[string]float64) []float64 {
	out := make([]float64, len(ts))
	for i := range ts {
		for j := i + 1; j < len(ts); j++ {
			if len(ts[i]) == 0 || len(ts[j]) == 0 {
				continue
			}
			shared := 0
			for t := range ts[i] {
				if _, ok := ts[j][t]; ok {
					shared++
				}
			}
			sim := float64(shared) / math.Sqrt(float64(len(ts[i])*len(ts[j])))
			out[i] += sim
			out[j] += sim
		}
	}
	return out
}

// best returns up to k of text's most informative sentences in their
// original order, ties going to the earlier sentence.
func best(text string, k int) []string {
	ss := splitSentences(text)
	if len(ss) <= k {
		return ss
	}
	scores := rank(termSets(ss))
	chosen := make([]bool, len(ss))
	for range k {
		top := -1
		for i := range ss {
			if !chosen[i] && (top < 0 || scores[i] > scores[top]) {
				top = i
			}
		}
		chosen[top] = true
	}
	var out []string
	for i, s := range ss {
		if chosen[i] {
			out = append(out, s)
		}
	}
	return out
}

// ellipsis marks a cut text.
const ellipsis = "…"

// truncate returns s cut so that count counts at most limit tokens,
// preferring a cut at a space, and marked with an ellipsis. It returns s
// when it fits and "" when not even one word does.
func truncate(s string, count TokenCounter, limit int) string {
	if count.Count(s) <= limit {
		return s
	}
	rs := []rune(s)
	// Binary search for the longest prefix that fits with the ellipsis.
	lo, hi := 0, len(rs)
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if count.Count(string(rs[:mid])+ellipsis) <= limit {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	cut := string(rs[:lo])
	if i := strings.LastIndexFunc(cut, unicode.IsSpace); i > len(cut)/2 {
		cut = cut[:i]
	}
	cut = strings.TrimRightFunc(cut, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsPunct(r) })
	if cut == "" {
		return ""
	}
	return cut + ellipsis
}
