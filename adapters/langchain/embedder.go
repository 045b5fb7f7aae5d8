package langchain

import (
	"context"
	"fmt"

	"github.com/tmc/langchaingo/embeddings"
)

// NewEmbedder validates cfg and returns an embedder for its model, which
// must be an embedding model (e.g. "nomic-embed-text" on Ollama,
// "text-embedding-3-small" on OpenAI). Each call to the server is bounded by
// Config.Timeout and its errors are wrapped as "langchain provider/model:
// embed: ..."; failures are not retried, and System and Temperature do not
// apply.
func NewEmbedder(cfg Config) (embeddings.Embedder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	m, err := newModel(cfg)
	if err != nil {
		return nil, fmt.Errorf("langchain %s/%s: new embedder: %w", cfg.Provider, cfg.Model, err)
	}
	client := embeddings.EmbedderClientFunc(func(ctx context.Context, texts []string) ([][]float32, error) {
		ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
		defer cancel()
		vectors, err := m.CreateEmbedding(ctx, texts)
		if err != nil {
			return nil, fmt.Errorf("langchain %s/%s: embed: %w", cfg.Provider, cfg.Model, err)
		}
		return vectors, nil
	})
	return embeddings.NewEmbedder(client)
}
