package rag

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/parleychat/parley/domain/chat"
	"github.com/parleychat/parley/domain/room"
)

var _ chat.Retriever = (*Retriever)(nil)

// Retriever defaults, for zero RetrieverConfig fields. (DefaultK, in
// rag.go, is how many passages an answer is given.)
const (
	// DefaultTimeout bounds one retrieval, encoding and search together.
	DefaultTimeout = 2 * time.Second
	// DefaultCandidates is how many hits each list contributes to the
	// fusion, and how many fused hits are diversified down to K.
	DefaultCandidates = 16
	// DefaultMinRelevance is the sparse floor: a hit must reach this share
	// of the best score any chunk could get for the question. Questions
	// no document answers match only a few of their words, common ones,
	// and fall below it (see the README's retrieval figures).
	DefaultMinRelevance = 0.04
	// DefaultRewriteTimeout bounds the query rewrite.
	DefaultRewriteTimeout = 3 * time.Second
)

// Rewriter turns a question into search queries in the corpus languages,
// through a language model: one short call.
type Rewriter interface {
	// Rewrite returns the queries, at most one per corpus language; the
	// question itself is searched for as well, whatever they are.
	Rewrite(ctx context.Context, question string) ([]string, error)
	// Name identifies the model, for the record.
	Name() string
}

// RetrieverConfig configures a Retriever. The zero value is valid.
type RetrieverConfig struct {
	// K is how many passages to retrieve at most. Zero means DefaultK.
	K int
	// Candidates is how many hits each retriever's list contributes to the
	// fusion, and how many fused hits are diversified down to K. Zero means
	// DefaultCandidates; it must not be below K.
	Candidates int
	// MinRelevance is the sparse floor, a share of the question's
	// attainable BM25 score (SearchOptions.MinRelevance). Zero means
	// DefaultMinRelevance; negative means none (any shared term counts).
	MinRelevance float64
	// MinSimilarity is the dense floor, a cosine similarity
	// (SearchOptions.MinSimilarity); zero keeps every hit with a
	// non-negative similarity. It depends on the embedding model.
	MinSimilarity float64
	// RRFK is Reciprocal Rank Fusion's k. Zero means DefaultRRFK.
	RRFK int
	// Timeout bounds one retrieval, not counting the rewrite. Zero means
	// DefaultTimeout. An index that is down or slow costs at most this much
	// before the answer goes ahead without documents.
	Timeout time.Duration
	// RewriteTimeout bounds the query rewrite, when there is a Rewriter.
	// Zero means DefaultRewriteTimeout. A rewrite that fails or times out
	// is skipped, logged and recorded: the question is searched as asked.
	RewriteTimeout time.Duration
	// Sources restricts retrieval to these documents; empty means all.
	Sources []string
}

// Validate reports every problem with c, one line each.
func (c RetrieverConfig) Validate() error {
	var errs []error
	if c.K < 0 {
		errs = append(errs, fmt.Errorf("retriever config: K %d is negative; use 0 for the default %d", c.K, DefaultK))
	}
	if c.Candidates < 0 || (c.Candidates > 0 && c.Candidates < max(c.K, 1)) {
		errs = append(errs, fmt.Errorf("retriever config: Candidates %d must be at least K (0 means %d)", c.Candidates, DefaultCandidates))
	}
	if math.IsNaN(c.MinRelevance) || c.MinRelevance > 1 {
		errs = append(errs, fmt.Errorf("retriever config: MinRelevance %v is not a share of at most 1", c.MinRelevance))
	}
	if math.IsNaN(c.MinSimilarity) || c.MinSimilarity < -1 || c.MinSimilarity > 1 {
		errs = append(errs, fmt.Errorf("retriever config: MinSimilarity %v is not a cosine similarity between -1 and 1", c.MinSimilarity))
	}
	if c.RRFK < 0 {
		errs = append(errs, fmt.Errorf("retriever config: RRFK %d is negative; use 0 for the default %d", c.RRFK, DefaultRRFK))
	}
	if c.Timeout < 0 || c.RewriteTimeout < 0 {
		errs = append(errs, fmt.Errorf("retriever config: Timeout %s and RewriteTimeout %s must not be negative", c.Timeout, c.RewriteTimeout))
	}
	return errors.Join(errs...)
}

// RetrieverDeps are what a Retriever searches with.
type RetrieverDeps struct {
	// Index is searched. Required.
	Index Index
	// Embedder, if set, adds a dense list per query to the sparse ones,
	// fused with them: hybrid retrieval. It must be the one the index's
	// collection was ingested with.
	Embedder Embedder
	// Rewriter, if set, rewrites each question into the corpus languages
	// before the search.
	Rewriter Rewriter
	// Logger receives skipped rewrites; nil discards them.
	Logger *slog.Logger
}

// Retriever is the chat.Retriever over an Index: it encodes the question
// (its terms, and its embedding when there is an Embedder), searches the
// index, which fuses the lists, and diversifies the fused hits down to K
// passages (Diversify). It is safe for concurrent use if its deps are.
type Retriever struct {
	deps RetrieverDeps
	cfg  RetrieverConfig
	log  *slog.Logger
}

// NewRetriever validates cfg, applies its defaults and returns a Retriever.
func NewRetriever(deps RetrieverDeps, cfg RetrieverConfig) (*Retriever, error) {
	var errs []error
	if deps.Index == nil {
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
	if cfg.Candidates == 0 {
		cfg.Candidates = max(DefaultCandidates, cfg.K)
	}
	switch {
	case cfg.MinRelevance == 0:
		cfg.MinRelevance = DefaultMinRelevance
	case cfg.MinRelevance < 0:
		cfg.MinRelevance = 0
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.RewriteTimeout == 0 {
		cfg.RewriteTimeout = DefaultRewriteTimeout
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Retriever{deps: deps, cfg: cfg, log: log}, nil
}

// Method names what retrieves: SparseEncoding and BM25, plus the
// embedder's name when there is one (e.g.
// "terms-ko-en-1/bm25+ollama-nomic-embed-text").
func (r *Retriever) Method() string {
	m := SparseEncoding + "/bm25"
	if r.deps.Embedder != nil {
		m += "+" + r.deps.Embedder.Name()
	}
	return m
}

// ErrTimeout is wrapped by Retrieve's error when the embedder and index
// did not answer within Timeout.
var ErrTimeout = errors.New("retrieval timed out")

// Retrieve returns the passages for question, best first, at most K, and
// the record of how they were found: the rewrite if one ran, every
// retriever's list, and the fused order. Without a passage above the
// floors it returns none. It gives the embedder and index a context that
// ends after Timeout; when that time runs out, the error wraps ErrTimeout
// and context.DeadlineExceeded. The Retrieval always names the method and
// index, also with an error.
func (r *Retriever) Retrieve(ctx context.Context, question string) (chat.Retrieval, error) {
	out := chat.Retrieval{Embedder: r.Method(), Index: r.deps.Index.Name()}
	if strings.TrimSpace(question) == "" {
		return out, fmt.Errorf("retrieve from %s: the question is empty", out.Index)
	}
	queries := []string{question}
	if r.deps.Rewriter != nil {
		var rw *room.QueryRewrite
		queries, rw = r.rewrite(ctx, question)
		out.Rewrite = rw
	}
	sctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	res, texts, err := r.search(sctx, queries)
	if err != nil {
		if sctx.Err() == context.DeadlineExceeded && !errors.Is(err, ErrTimeout) {
			err = fmt.Errorf("%w after %s: %w", ErrTimeout, r.cfg.Timeout, err)
		}
		return out, fmt.Errorf("retrieve from %s with %s: %w", out.Index, out.Embedder, err)
	}
	for i, l := range res.Lists {
		run := room.RetrieverRun{Kind: l.Kind, Model: SparseEncoding + "/bm25", Query: texts[i], Hits: make([]room.RetrievalHit, len(l.Hits))}
		if l.Kind == KindDense {
			run.Model = r.deps.Embedder.Name()
		}
		for j, h := range l.Hits {
			run.Hits[j] = room.RetrievalHit{ChunkID: h.ChunkID, Source: h.Source, Score: h.Score}
		}
		out.Retrievers = append(out.Retrievers, run)
	}
	for _, h := range res.Hits {
		if math.IsNaN(h.Score) || math.IsInf(h.Score, 0) {
			return out, fmt.Errorf("retrieve from %s: chunk %s has score %v", out.Index, h.Chunk.ID, h.Score)
		}
		out.Fused = append(out.Fused, room.RetrievalHit{ChunkID: h.Chunk.ID, Source: h.Chunk.Source, Score: h.Score})
	}
	for _, h := range Diversify(res.Hits, r.cfg.K) {
		out.Passages = append(out.Passages, chat.Passage{Document: h.Chunk.Source, Title: h.Chunk.Title,
			ChunkID: h.Chunk.ID, Score: h.Score, Text: h.Chunk.Text})
	}
	return out, nil
}

// rewrite asks the Rewriter for queries within RewriteTimeout and returns
// the question followed by the distinct queries it gave, and the record.
// A failure is logged and recorded, and leaves the question alone.
func (r *Retriever) rewrite(ctx context.Context, question string) ([]string, *room.QueryRewrite) {
	rec := &room.QueryRewrite{Model: r.deps.Rewriter.Name()}
	rctx, cancel := context.WithTimeout(ctx, r.cfg.RewriteTimeout)
	defer cancel()
	start := time.Now()
	qs, err := r.deps.Rewriter.Rewrite(rctx, question)
	if err != nil {
		if rctx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("timed out after %s: %w", r.cfg.RewriteTimeout, err)
		}
		rec.Error = err.Error()
		r.log.Warn("retrieval: query rewrite skipped; searching the question as asked",
			"model", rec.Model, "took", time.Since(start).Round(time.Millisecond), "error", err)
		return []string{question}, rec
	}
	queries := []string{question}
	seen := map[string]bool{strings.TrimSpace(question): true}
	for _, q := range qs {
		if q = strings.TrimSpace(q); q != "" && !seen[q] {
			seen[q] = true
			queries = append(queries, q)
			rec.Queries = append(rec.Queries, q)
		}
	}
	return queries, rec
}

// search encodes queries and searches the index. It returns the result
// and, for each of its lists, the query text it searched for.
func (r *Retriever) search(ctx context.Context, queries []string) (Result, []string, error) {
	var q Query
	var texts []string
	for _, s := range queries {
		if v := QueryTerms(s); v.Len() > 0 {
			q.Sparse = append(q.Sparse, v)
			texts = append(texts, s)
		}
	}
	if e := r.deps.Embedder; e != nil {
		vecs, err := e.Embed(ctx, queries)
		if err != nil {
			return Result{}, nil, fmt.Errorf("embed the question: %w", err)
		}
		if len(vecs) != len(queries) {
			return Result{}, nil, fmt.Errorf("embed the question: got %d vectors for %d texts", len(vecs), len(queries))
		}
		for i, v := range vecs {
			if d := e.Dimension(); len(v) != d {
				return Result{}, nil, fmt.Errorf("embed the question: got %d dimensions, the embedder declares %d", len(v), d)
			}
			q.Dense = append(q.Dense, v)
			texts = append(texts, queries[i])
		}
	}
	if len(q.Sparse)+len(q.Dense) == 0 {
		return Result{}, nil, nil // no term to look for, and no embedder
	}
	res, err := r.deps.Index.Search(ctx, q, SearchOptions{
		K: r.cfg.Candidates, Candidates: r.cfg.Candidates, MinRelevance: r.cfg.MinRelevance,
		MinSimilarity: r.cfg.MinSimilarity, RRFK: r.cfg.RRFK, Sources: r.cfg.Sources,
	})
	if err != nil {
		return Result{}, nil, fmt.Errorf("search: %w", err)
	}
	if len(res.Lists) != len(texts) {
		return Result{}, nil, fmt.Errorf("search: %s returned %d lists for %d queries", r.deps.Index.Name(), len(res.Lists), len(texts))
	}
	return res, texts, nil
}

// Diversify returns up to k of hits (best first) with at most one chunk
// per document, unless the next best chunk of a document outscores every
// other document's best chunk: then it is taken too. Two chunks of one
// document thus share the passages only when that document is the clear
// first, and never push another document's best chunk out.
func Diversify(hits []Hit, k int) []Hit {
	best := map[string]float64{} // each document's best score; hits are best first
	var order []string
	for _, h := range hits {
		if _, ok := best[h.Chunk.Source]; !ok {
			best[h.Chunk.Source] = h.Score
			order = append(order, h.Chunk.Source)
		}
	}
	taken := map[string]bool{}
	var out []Hit
	for _, h := range hits {
		if len(out) == k {
			break
		}
		src := h.Chunk.Source
		if taken[src] {
			beatsAll := true
			for _, other := range order {
				if other != src && best[other] >= h.Score {
					beatsAll = false
					break
				}
			}
			if !beatsAll {
				continue
			}
		}
		taken[src] = true
		out = append(out, h)
	}
	return out
}
