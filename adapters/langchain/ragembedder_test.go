package langchain_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/parleychat/parley/adapters/langchain"
)

func TestRAGEmbedder(t *testing.T) {
	var dim atomic.Int32
	dim.Store(3)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Input string `json:"input"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		v := make([]float32, dim.Load())
		v[0] = float32(len(req.Input))
		json.NewEncoder(w).Encode(map[string]any{"embeddings": [][]float32{v}})
	}))
	t.Cleanup(srv.Close)
	cfg := langchain.Config{Provider: "ollama", BaseURL: srv.URL, Model: "all-minilm"}

	e, err := langchain.NewRAGEmbedder(t.Context(), cfg)
	if err != nil {
		t.Fatalf("NewRAGEmbedder: %v", err)
	}
	if e.Dimension() != 3 || e.Name() != "ollama-all-minilm" {
		t.Errorf("Dimension, Name = %d, %q; want 3, ollama-all-minilm", e.Dimension(), e.Name())
	}
	vs, err := e.Embed(t.Context(), []string{"ab", "abcd"})
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 2 || vs[0][0] != 2 || vs[1][0] != 4 {
		t.Errorf("Embed = %v, want vectors in text order", vs)
	}
	dim.Store(5) // the model changed under us
	if _, err := e.Embed(t.Context(), []string{"x"}); err == nil {
		t.Errorf("Embed accepted a vector of another dimension")
	}

	srv.Close()
	if _, err := langchain.NewRAGEmbedder(t.Context(), cfg); err == nil {
		t.Errorf("NewRAGEmbedder with the server down: nil error")
	}
}
