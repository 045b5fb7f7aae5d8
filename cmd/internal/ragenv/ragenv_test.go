package ragenv

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/parleychat/parley/adapters/lexical"
	"github.com/parleychat/parley/domain/rag"
)

func TestFromEnv(t *testing.T) {
	for _, tt := range []struct {
		env  map[string]string
		want string // part of the error, "" for none
	}{
		{map[string]string{}, ""},
		{map[string]string{"PARLEY_EMBEDDER": "Ollama"}, ""},
		{map[string]string{"PARLEY_EMBEDDER": "openai"}, "PARLEY_OPENAI_API_KEY"},
		{map[string]string{"PARLEY_EMBEDDER": "bert"}, "not none, ollama, openai or lexical"},
		{map[string]string{"PARLEY_EMBED_MODEL": "all-minilm"}, "no effect with the none embedder"},
		{map[string]string{"PARLEY_EMBEDDER": "lexical", "PARLEY_EMBED_MODEL": "x"}, "no effect with the lexical embedder"},
		{map[string]string{"PARLEY_QDRANT_URL": "https://q.example:6334", "PARLEY_QDRANT_API_KEY": "k"}, ""},
		{map[string]string{"PARLEY_QDRANT_URL": "http://qdrant:6334", "PARLEY_QDRANT_API_KEY": "k"}, "in clear text"},
		{map[string]string{"PARLEY_QDRANT_URL": "http://qdrant:6334", "PARLEY_QDRANT_API_KEY": "k", "PARLEY_QDRANT_ALLOW_INSECURE_API_KEY": "true"}, ""},
		{map[string]string{"PARLEY_QDRANT_ALLOW_INSECURE_API_KEY": "sure"}, "not a boolean"},
	} {
		_, err := FromEnv(func(k string) string { return tt.env[k] })
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("FromEnv(%v) = %v", tt.env, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("FromEnv(%v) = %v, want an error containing %q", tt.env, err, tt.want)
		}
	}
}

func TestCollectionFor(t *testing.T) {
	e, _ := lexical.New(lexical.Config{})
	for _, tt := range []struct {
		cfg  Config
		emb  rag.Embedder
		want string
	}{
		{Config{}, nil, "parley-terms-ko-en-1"},
		{Config{}, e, "parley-terms-ko-en-1-lexical-hash-384"},
		{Config{Collection: "mine"}, e, "mine"},
		{Config{}, named("ollama-nomic-embed-text:latest"), "parley-terms-ko-en-1-ollama-nomic-embed-text-latest"},
	} {
		if got := tt.cfg.CollectionFor(tt.emb); got != tt.want {
			t.Errorf("CollectionFor(%v) with %+v = %q, want %q", tt.emb, tt.cfg, got, tt.want)
		}
	}
}

func TestOpenEmbedder(t *testing.T) {
	c, err := FromEnv(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if e, err := c.OpenEmbedder(t.Context()); err != nil || e != nil || c.Embedder != EmbedderNone {
		t.Errorf("default embedder %q opens %v, %v; want none", c.Embedder, e, err)
	}
}

type named string

func (n named) Name() string   { return string(n) }
func (n named) Dimension() int { return 4 }
func (n named) Embed(context.Context, []string) ([][]float32, error) {
	return nil, errors.New("not used")
}
