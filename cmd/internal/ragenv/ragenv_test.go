package ragenv

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/parleychat/parley/adapters/lexical"
)

func TestFromEnv(t *testing.T) {
	for _, tt := range []struct {
		env  map[string]string
		want string // part of the error, "" for none
	}{
		{map[string]string{}, ""},
		{map[string]string{"PARLEY_EMBEDDER": "Ollama"}, ""},
		{map[string]string{"PARLEY_EMBEDDER": "openai"}, "PARLEY_OPENAI_API_KEY"},
		{map[string]string{"PARLEY_EMBEDDER": "bert"}, "not lexical, ollama or openai"},
		{map[string]string{"PARLEY_EMBED_MODEL": "all-minilm"}, "no effect"},
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
	if got := (Config{}).CollectionFor(e); got != "parley-lexical-hash-384" {
		t.Errorf("default collection = %q", got)
	}
	if got := (Config{Collection: "mine"}).CollectionFor(e); got != "mine" {
		t.Errorf("collection with PARLEY_RAG_COLLECTION = %q", got)
	}
	if got := (Config{}).CollectionFor(named("ollama-nomic-embed-text:latest")); got != "parley-ollama-nomic-embed-text-latest" {
		t.Errorf("collection for a model with a tag = %q", got)
	}
}

type named string

func (n named) Name() string   { return string(n) }
func (n named) Dimension() int { return 4 }
func (n named) Embed(context.Context, []string) ([][]float32, error) {
	return nil, errors.New("not used")
}
