package tokens

import (
	"fmt"
	"strings"

	"github.com/tiktoken-go/tokenizer"

	"github.com/parleychat/parley/domain/memory"
)

var _ memory.TokenCounter = (*Counter)(nil)

// DefaultEncoding is the encoding New uses for "": GPT-4's and
// GPT-3.5's, a fair stand-in for other models' tokenizers.
const DefaultEncoding = string(tokenizer.Cl100kBase)

// Encodings lists the encodings New accepts.
var Encodings = []string{
	string(tokenizer.Cl100kBase), string(tokenizer.O200kBase), string(tokenizer.P50kBase),
	string(tokenizer.R50kBase), string(tokenizer.P50kEdit),
}

// Counter counts tokens with one encoding. It is safe for concurrent use.
type Counter struct {
	codec tokenizer.Codec
}

// New returns a Counter for encoding, one of Encodings ("" means
// DefaultEncoding). The first Counter of an encoding builds its vocabulary
// from the tables compiled into the binary, which takes a fraction of a
// second; later ones share it.
func New(encoding string) (*Counter, error) {
	if encoding == "" {
		encoding = DefaultEncoding
	}
	c, err := tokenizer.Get(tokenizer.Encoding(encoding))
	if err != nil {
		return nil, fmt.Errorf("tokens: encoding %q is not supported: use one of %s", encoding, strings.Join(Encodings, ", "))
	}
	// As tiktoken does by default: invalid UTF-8 counts as U+FFFD.
	c.SetErrorMode(tokenizer.ErrorModeReplace)
	return &Counter{codec: c}, nil
}

// Encoding returns the encoding's name.
func (c *Counter) Encoding() string { return c.codec.GetName() }

// Count implements memory.TokenCounter. The encoder fails only on
// internal errors of its regular expression engine; then Count returns
// the text's length in bytes, an upper bound on any byte-pair encoding's
// count, so that a budget is never overrun.
func (c *Counter) Count(text string) int {
	n, err := c.codec.Count(text)
	if err != nil {
		return len(text)
	}
	return n
}
