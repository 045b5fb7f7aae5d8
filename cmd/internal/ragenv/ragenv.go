// Package ragenv reads Parley's retrieval settings from the environment
// and opens the embedder and index they name. chatctl ingest and chatd
// both use it, so the server searches the collection the operator
// ingested into, with the same embedder.
//
// Every collection is searched by BM25 over its chunks' terms
// (rag.SparseEncoding); a dense embedder adds a second retriever, fused
// with the first (hybrid retrieval).
//
//	PARLEY_EMBEDDER        none (default: BM25 only), ollama, openai, or
//	                       lexical (the hashing embedder, kept to compare)
//	PARLEY_EMBED_MODEL     the embedding model (ollama: nomic-embed-text,
//	                       openai: text-embedding-3-small by default)
//	PARLEY_OLLAMA_URL      Ollama's URL (default http://localhost:11434)
//	PARLEY_OPENAI_URL      an OpenAI-compatible /v1 URL (default OpenAI's)
//	PARLEY_OPENAI_API_KEY  its API key (required for openai)
//	PARLEY_QDRANT_URL      Qdrant's gRPC URL; when set the index is Qdrant,
//	                       else the embedded index in Postgres
//	PARLEY_QDRANT_API_KEY  Qdrant's API key, if it needs one; only over
//	                       https unless PARLEY_QDRANT_ALLOW_INSECURE_API_KEY=true
//	PARLEY_RAG_COLLECTION  the collection (default: "parley-", the sparse
//	                       encoding, and the embedder's name if any, e.g.
//	                       parley-terms-ko-en-1 or
//	                       parley-terms-ko-en-1-ollama-nomic-embed-text, so
//	                       vectors of different encoders never mix)
package ragenv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/adapters/langchain"
	"github.com/parleychat/parley/adapters/lexical"
	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/adapters/qdrant"
	"github.com/parleychat/parley/domain/rag"
)

// Embedder names PARLEY_EMBEDDER accepts.
const (
	EmbedderNone    = "none"
	EmbedderLexical = "lexical"
	EmbedderOllama  = "ollama"
	EmbedderOpenAI  = "openai"
)

// Config holds the retrieval settings. Zero fields take the defaults
// listed in the package documentation.
type Config struct {
	Embedder     string
	EmbedModel   string
	OllamaURL    string
	OpenAIURL    string
	OpenAIKey    string // never logged
	QdrantURL    string
	QdrantAPIKey string // never logged
	// QdrantInsecureAPIKey allows QdrantAPIKey over plain http.
	QdrantInsecureAPIKey bool
	Collection           string
}

// FromEnv reads the settings and reports every problem with them.
func FromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		Embedder:     strings.ToLower(strings.TrimSpace(getenv("PARLEY_EMBEDDER"))),
		EmbedModel:   getenv("PARLEY_EMBED_MODEL"),
		OllamaURL:    getenv("PARLEY_OLLAMA_URL"),
		OpenAIURL:    getenv("PARLEY_OPENAI_URL"),
		OpenAIKey:    getenv("PARLEY_OPENAI_API_KEY"),
		QdrantURL:    getenv("PARLEY_QDRANT_URL"),
		QdrantAPIKey: getenv("PARLEY_QDRANT_API_KEY"),
		Collection:   getenv("PARLEY_RAG_COLLECTION"),
	}
	var errs []error
	if v := strings.TrimSpace(getenv("PARLEY_QDRANT_ALLOW_INSECURE_API_KEY")); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("PARLEY_QDRANT_ALLOW_INSECURE_API_KEY=%q is not a boolean (true or false)", v))
		}
		c.QdrantInsecureAPIKey = b
	}
	if c.QdrantAPIKey != "" && strings.HasPrefix(strings.ToLower(strings.TrimSpace(c.QdrantURL)), "http://") && !c.QdrantInsecureAPIKey {
		errs = append(errs, errors.New("PARLEY_QDRANT_API_KEY with an http:// PARLEY_QDRANT_URL would send the key in clear text: use https, or set PARLEY_QDRANT_ALLOW_INSECURE_API_KEY=true on a network you trust"))
	}
	switch c.Embedder {
	case "":
		c.Embedder = EmbedderNone
	case EmbedderNone, EmbedderLexical, EmbedderOllama, EmbedderOpenAI:
	default:
		errs = append(errs, fmt.Errorf("PARLEY_EMBEDDER %q is not none, ollama, openai or lexical", c.Embedder))
	}
	if c.Embedder == EmbedderOpenAI && c.OpenAIKey == "" {
		errs = append(errs, errors.New("PARLEY_EMBEDDER=openai needs PARLEY_OPENAI_API_KEY"))
	}
	if (c.Embedder == EmbedderNone || c.Embedder == EmbedderLexical) && c.EmbedModel != "" {
		errs = append(errs, fmt.Errorf("PARLEY_EMBED_MODEL %q has no effect with the %s embedder: set PARLEY_EMBEDDER to ollama or openai too", c.EmbedModel, c.Embedder))
	}
	return c, errors.Join(errs...)
}

// OpenEmbedder returns the configured dense embedder, or nil for none.
// Model embedders are probed once for their dimension, so the server must
// be up.
func (c Config) OpenEmbedder(ctx context.Context) (rag.Embedder, error) {
	switch c.Embedder {
	case EmbedderNone, "":
		return nil, nil
	case EmbedderOllama:
		model := c.EmbedModel
		if model == "" {
			model = "nomic-embed-text"
		}
		return langchain.NewRAGEmbedder(ctx, langchain.Config{Provider: langchain.ProviderOllama, BaseURL: c.OllamaURL, Model: model})
	case EmbedderOpenAI:
		model := c.EmbedModel
		if model == "" {
			model = "text-embedding-3-small"
		}
		return langchain.NewRAGEmbedder(ctx, langchain.Config{Provider: langchain.ProviderOpenAI, BaseURL: c.OpenAIURL, APIKey: c.OpenAIKey, Model: model})
	default:
		return lexical.New(lexical.Config{})
	}
}

// encoders names what encodes chunks with embedder e (nil for none): the sparse
// encoding, and e's name when there is one.
func encoders(e rag.Embedder) string {
	if e == nil {
		return rag.SparseEncoding
	}
	return rag.SparseEncoding + "-" + e.Name()
}

var unsafeName = regexp.MustCompile(`[^a-z0-9._-]+`)

// CollectionFor returns the collection for embedder e (nil for none):
// Config.Collection if set, else "parley-" and encoders(e) made safe (lower
// case; runs of other characters than letters, digits, '.', '_' and '-'
// become '-').
func (c Config) CollectionFor(e rag.Embedder) string {
	if c.Collection != "" {
		return c.Collection
	}
	return "parley-" + strings.Trim(unsafeName.ReplaceAllString(strings.ToLower(encoders(e)), "-"), "-")
}

// IndexKind returns "qdrant" when PARLEY_QDRANT_URL is set, else
// "postgres".
func (c Config) IndexKind() string {
	if c.QdrantURL != "" {
		return "qdrant"
	}
	return "postgres"
}

// OpenIndex opens the configured index for e's vectors (nil: no dense
// vectors): Qdrant, or the embedded index in the database behind pool
// (which must then be non-nil and migrated). The returned function
// releases it.
func (c Config) OpenIndex(ctx context.Context, e rag.Embedder, pool *pgxpool.Pool, log *slog.Logger) (rag.Index, func(), error) {
	collection := c.CollectionFor(e)
	dim := 0
	if e != nil {
		dim = e.Dimension()
	}
	if c.QdrantURL != "" {
		x, err := qdrant.Open(ctx, qdrant.Config{URL: c.QdrantURL, APIKey: c.QdrantAPIKey, AllowInsecureAPIKey: c.QdrantInsecureAPIKey, Collection: collection, Dimension: dim})
		if err != nil {
			return nil, nil, err
		}
		return x, func() { _ = x.Close() }, nil
	}
	if pool == nil {
		return nil, nil, errors.New("ragenv: the embedded index needs a Postgres pool")
	}
	x, err := postgres.OpenRAGIndex(ctx, pool, postgres.RAGIndexConfig{Collection: collection, Dimension: dim, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	return x, func() {}, nil
}
