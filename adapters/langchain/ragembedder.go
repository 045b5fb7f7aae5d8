package langchain

import (
	"context"
	"fmt"

	"github.com/tmc/langchaingo/embeddings"

	"github.com/parleychat/parley/domain/rag"
)

// RAGEmbedder is a rag.Embedder over an embedding model reached through
// langchaingo (NewEmbedder). Its dimension is probed once, when it is
// made.
type RAGEmbedder struct {
	emb  embeddings.Embedder
	name string
	dim  int
}

var _ rag.Embedder = (*RAGEmbedder)(nil)

// NewRAGEmbedder validates cfg, embeds one short text to learn the model's
// dimension, and returns the embedder. It fails if the server cannot be
// reached or returns no vector, so a misconfigured model shows at start-up
// rather than at the first question.
func NewRAGEmbedder(ctx context.Context, cfg Config) (*RAGEmbedder, error) {
	emb, err := NewEmbedder(cfg)
	if err != nil {
		return nil, err
	}
	v, err := emb.EmbedQuery(ctx, "dimension probe")
	if err != nil {
		return nil, fmt.Errorf("probe the embedding dimension (is the server up and the model pulled?): %w", err)
	}
	if len(v) == 0 {
		return nil, fmt.Errorf("langchain %s/%s: the model returned an empty vector: is it an embedding model?", cfg.Provider, cfg.Model)
	}
	return &RAGEmbedder{emb: emb, name: cfg.Provider + "-" + cfg.Model, dim: len(v)}, nil
}

// Name returns the provider and model, e.g. "ollama-nomic-embed-text".
func (e *RAGEmbedder) Name() string { return e.name }

// Dimension returns the dimension probed by NewRAGEmbedder.
func (e *RAGEmbedder) Dimension() int { return e.dim }

// Embed implements rag.Embedder, checking that the model returned one
// vector of the probed dimension per text.
func (e *RAGEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	if len(texts) == 0 {
		return nil, nil
	}
	vs, err := e.emb.EmbedDocuments(ctx, texts)
	if err != nil {
		return nil, err
	}
	if len(vs) != len(texts) {
		return nil, fmt.Errorf("%s: %d vectors for %d texts", e.name, len(vs), len(texts))
	}
	for i, v := range vs {
		if len(v) != e.dim {
			return nil, fmt.Errorf("%s: vector %d has %d components, the model gave %d before", e.name, i, len(v), e.dim)
		}
	}
	return vs, nil
}
