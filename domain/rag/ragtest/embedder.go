package ragtest

import (
	"context"
	"hash/fnv"
	"math"
	"strconv"
	"strings"
	"unicode"

	"github.com/parleychat/parley/domain/rag"
)

var _ rag.Embedder = HashEmbedder{}

// HashEmbedder is a lexical rag.Embedder for tests: a text's vector counts
// its features, hashed into Dim dimensions with a hashed sign, weighted
// 1+log(count) and scaled to unit length. Features are lower-cased words
// of Latin letters or digits (English stop words left out, a plural or
// possessive s trimmed) and, for Hangul, every pair of adjacent syllables
// in a word, so that particles and endings do not hide a shared stem. It is
// deterministic and needs no model.
type HashEmbedder struct {
	Dim int // dimensions; 0 means 1024
}

// Dimension returns Dim, or 1024.
func (e HashEmbedder) Dimension() int {
	if e.Dim <= 0 {
		return 1024
	}
	return e.Dim
}

// Name returns "ragtest/hash-" and the dimension.
func (e HashEmbedder) Name() string { return "ragtest/hash-" + strconv.Itoa(e.Dimension()) }

// Embed returns one vector per text.
func (e HashEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dim := e.Dimension()
	out := make([][]float32, len(texts))
	for i, t := range texts {
		counts := map[string]int{}
		for _, f := range lexicalFeatures(t) {
			counts[f]++
		}
		v := make([]float64, dim)
		for f, n := range counts {
			h := fnv.New64a()
			h.Write([]byte(f))
			x := h.Sum64()
			w := 1 + math.Log(float64(n))
			if x>>63 == 1 {
				w = -w
			}
			v[x%uint64(dim)] += w
		}
		var norm float64
		for _, x := range v {
			norm += x * x
		}
		norm = math.Sqrt(norm)
		vec := make([]float32, dim)
		for j, x := range v {
			if norm > 0 {
				vec[j] = float32(x / norm)
			}
		}
		out[i] = vec
	}
	return out, nil
}

// lexicalFeatures lists the features of s, with repeats.
func lexicalFeatures(s string) []string {
	var out []string
	words := strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
	for _, w := range words {
		syl := []rune(w)
		if unicode.Is(unicode.Hangul, syl[0]) {
			if len(syl) == 1 {
				out = append(out, w)
			}
			for j := 0; j+1 < len(syl); j++ {
				out = append(out, string(syl[j:j+2]))
			}
			continue
		}
		if stopWords[w] {
			continue
		}
		if len(w) > 3 && strings.HasSuffix(w, "s") && !strings.HasSuffix(w, "ss") {
			w = strings.TrimSuffix(w, "s")
		}
		out = append(out, w)
	}
	return out
}

// stopWords are English words too common to tell documents apart.
var stopWords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`a an and are as at be been but by can could do does did for from had has have he her
		his how i if in into is it its me my no not of on or our s she so than that the their them then there these they
		this to up us was we were what when where which who why will with would you your yours about also any each may
		must only other over such too very just all am ll m re t ve d`) {
		m[w] = true
	}
	return m
}()
