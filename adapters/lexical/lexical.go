package lexical

import (
	"context"
	"fmt"
	"math"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/parleychat/parley/domain/rag"
	"github.com/parleychat/parley/domain/text"
)

// DefaultDimension is Config.Dimension's default.
const DefaultDimension = 384

// Feature weights and n-gram sizes: see the package documentation.
const (
	wordWeight  = 1.0
	gramWeight  = 0.5
	minGram     = 2
	maxGram     = 4
	kindWord    = 'w'
	kindGram    = 'g'
	kindSymbol  = 's'
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

// Config configures an Embedder; the zero value is the default.
type Config struct {
	// Dimension is the vector length, 16 to 65536. 0 means
	// DefaultDimension.
	Dimension int
}

// Embedder is a rag.Embedder hashing words and character n-grams. It is
// deterministic, needs nothing outside the process and is safe for
// concurrent use.
type Embedder struct {
	dim int
}

var _ rag.Embedder = (*Embedder)(nil)

// New returns an Embedder for cfg.
func New(cfg Config) (*Embedder, error) {
	if cfg.Dimension == 0 {
		cfg.Dimension = DefaultDimension
	}
	if cfg.Dimension < 16 || cfg.Dimension > 1<<16 {
		return nil, fmt.Errorf("lexical: Dimension %d is outside 16 to 65536", cfg.Dimension)
	}
	return &Embedder{dim: cfg.Dimension}, nil
}

// Name returns "lexical-hash-" and the dimension, e.g. "lexical-hash-384".
func (e *Embedder) Name() string { return fmt.Sprintf("lexical-hash-%d", e.dim) }

// Dimension returns the vector length.
func (e *Embedder) Dimension() int { return e.dim }

// Embed implements rag.Embedder. It fails only when ctx is done.
func (e *Embedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	for i, t := range texts {
		if i%64 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("lexical: embed: %w", err)
			}
		}
		out[i] = e.Vector(t)
	}
	return out, nil
}

// Vector returns the unit-length vector of s (the zero vector for a text
// of spaces only).
func (e *Embedder) Vector(s string) []float32 {
	tf := map[uint64]float64{}
	words := 0
	s = strings.ToLower(norm.NFKC.String(s))
	var word []rune
	flush := func() {
		if len(word) == 0 {
			return
		}
		words++
		tf[hashRunes(kindWord, word)] += wordWeight
		padded := make([]rune, 0, len(word)+2)
		padded = append(append(append(padded, '<'), word...), '>')
		for n := minGram; n <= maxGram; n++ {
			for i := 0; i+n <= len(padded); i++ {
				tf[hashRunes(kindGram, padded[i:i+n])] += gramWeight
			}
		}
		word = word[:0]
	}
	for _, r := range s {
		if text.IsWordRune(r) {
			word = append(word, r)
			continue
		}
		flush()
	}
	flush()
	if words == 0 {
		for _, r := range s {
			if !unicode.IsSpace(r) {
				tf[hashRunes(kindSymbol, []rune{r})] += wordWeight
			}
		}
	}
	v := make([]float64, e.dim)
	for h, w := range tf {
		// Occurrences were added at their weight: w/weight is the count.
		weight := gramWeight
		if h&1 == 1 {
			weight = wordWeight
		}
		x := weight * (1 + math.Log(w/weight))
		i := (h >> 1) % uint64(e.dim)
		if h>>63 == 1 {
			x = -x
		}
		v[i] += x
	}
	var sum float64
	for _, x := range v {
		sum += x * x
	}
	out := make([]float32, e.dim)
	if sum == 0 {
		return out
	}
	inv := 1 / math.Sqrt(sum)
	for i, x := range v {
		out[i] = float32(x * inv)
	}
	return out
}

// hashRunes returns the FNV-1a hash of kind and the UTF-8 bytes of rs,
// with its lowest bit set for word and symbol features and clear for
// n-grams (so the weight can be told from the hash).
func hashRunes(kind byte, rs []rune) uint64 {
	h := uint64(fnvOffset64)
	h = (h ^ uint64(kind)) * fnvPrime64
	var buf [utf8.UTFMax]byte
	for _, r := range rs {
		n := utf8.EncodeRune(buf[:], r)
		for _, b := range buf[:n] {
			h = (h ^ uint64(b)) * fnvPrime64
		}
	}
	h &^= 1
	if kind != kindGram {
		h |= 1
	}
	return h
}
