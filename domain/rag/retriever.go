package rag

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/parleychat/parley/domain/chat"
)

var _ chat.Retriever = (*Retriever)(nil)

// DefaultTimeout bounds one retrieval, embedding and search together,
// when RetrieverConfig.Timeout is zero. (DefaultK, in rag.go, is how many
// passages an answer is given.)
const DefaultTimeout = 2 * time.Second

// RetrieverConfig configures a Retriever. The zero value is valid.
type RetrieverConfig struct {
	// K is how many passages to retrieve at most. Zero means DefaultK.
	K int
	// MinScore drops hits less similar than this (cosine, -1 to 1). Zero
	// keeps every hit with a positive score: a chunk sharing nothing with
	// the question is no source.
	MinScore float64
	// Timeout bounds one retrieval. Zero means DefaultTimeout. An index
	// that is down or slow costs at most this much before the answer goes
	// ahead without documents.
	Timeout time.Duration
	// Sources restricts retrieval to these documents; empty means all.
	Sources []string
}

// Validate reports every problem with c, one line each.
func (c RetrieverConfig) Validate() error {
	var errs []error
	if c.K < 0 {
		errs = append(errs, fmt.Errorf("retriever config: K %d is negative; use 0 for the default %d", c.K, DefaultK))
	}
	if math.IsNaN(c.MinScore) || c.MinScore < -1 || c.MinScore > 1 {
		errs = append(errs, fmt.Errorf("retriever config: MinScore %v is not a cosine similarity between -1 and 1", c.MinScore))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("retriever config: Timeout %s is negative; use 0 for the default %s", c.Timeout, DefaultTimeout))
	}
	return errors.Join(errs...)
}

// Retriever is the chat.Retriever over an Embedder and an Index: it embeds
// the question and searches the index for its K closest chunks. It is safe
// for concurrent use if they are.
type Retriever struct {
	emb Embedder
	idx Index
	cfg RetrieverConfig
}

// NewRetriever validates cfg, applies its defaults and returns a Retriever
// over emb and idx.
func NewRetriever(emb Embedder, idx Index, cfg RetrieverConfig) (*Retriever, error) {
	var errs []error
	if emb == nil {
		errs = append(errs, errors.New("retriever: no embedder"))
	}
	if idx == nil {
		errs = append(errs, errors.New("retriever: no index"))
	}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.K == 0 {
		cfg.K = DefaultK
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	return &Retriever{emb: emb, idx: idx, cfg: cfg}, nil
}

// ErrTimeout is wrapped by Retrieve's error when the embedder and index
// did not answer within Timeout.
var ErrTimeout = errors.New("retrieval timed out")

// Retrieve embeds question and returns the index's closest chunks as
// passages, best first: at most K, none scoring below MinScore (or, with
// MinScore 0, at or below 0). It gives the embedder and index a context
// that ends after Timeout; both must honour it, as every network client
// does. When that time runs out, the error wraps ErrTimeout and
// context.DeadlineExceeded. The Retrieval always names the embedder and
// index, also with an error.
func (r *Retriever) Retrieve(ctx context.Context, question string) (chat.Retrieval, error) {
	out := chat.Retrieval{Embedder: r.emb.Name(), Index: r.idx.Name()}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	hits, err := r.search(ctx, question)
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded && !errors.Is(err, ErrTimeout) {
			err = fmt.Errorf("%w after %s: %w", ErrTimeout, r.cfg.Timeout, err)
		}
		return out, fmt.Errorf("retrieve from %s with %s: %w", out.Index, out.Embedder, err)
	}
	for _, h := range hits {
		if math.IsNaN(h.Score) || math.IsInf(h.Score, 0) {
			return out, fmt.Errorf("retrieve from %s: chunk %s has score %v", out.Index, h.Chunk.ID, h.Score)
		}
		if h.Score < r.cfg.MinScore || (r.cfg.MinScore == 0 && h.Score <= 0) {
			continue
		}
		out.Passages = append(out.Passages, chat.Passage{Document: h.Chunk.Source, Title: h.Chunk.Title,
			ChunkID: h.Chunk.ID, Score: h.Score, Text: h.Chunk.Text})
	}
	return out, nil
}

func (r *Retriever) search(ctx context.Context, question string) ([]Hit, error) {
	if strings.TrimSpace(question) == "" {
		return nil, errors.New("the question is empty")
	}
	vecs, err := r.emb.Embed(ctx, []string{question})
	if err != nil {
		return nil, fmt.Errorf("embed the question: %w", err)
	}
	if len(vecs) != 1 {
		return nil, fmt.Errorf("embed the question: got %d vectors for 1 text", len(vecs))
	}
	if d := r.emb.Dimension(); len(vecs[0]) != d {
		return nil, fmt.Errorf("embed the question: got %d dimensions, the embedder declares %d", len(vecs[0]), d)
	}
	// The Index contract returns at most K hits, best first.
	hits, err := r.idx.Search(ctx, vecs[0], SearchOptions{K: r.cfg.K, MinScore: r.cfg.MinScore, Sources: r.cfg.Sources})
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	return hits, nil
}
