package langchain_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/adapters/langchain"
)

func TestNewEmbedderOllama(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Model string `json:"model"`
			Input string `json:"input"`
		}
		if r.URL.Path != "/api/embed" {
			t.Errorf("request path %q, want /api/embed", r.URL.Path)
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Model != "nomic-embed-text" {
			t.Errorf("request model %q (decode error %v), want nomic-embed-text", req.Model, err)
		}
		if req.Input == "fail" {
			http.Error(w, `{"error":"boom"}`, http.StatusInternalServerError)
			return
		}
		// A vector that encodes the input's length, to check the order.
		json.NewEncoder(w).Encode(map[string]any{"embeddings": [][]float32{{float32(len(req.Input)), 1}}})
	}))
	t.Cleanup(srv.Close)

	e, err := langchain.NewEmbedder(langchain.Config{Provider: "ollama", BaseURL: srv.URL, Model: "nomic-embed-text"})
	if err != nil {
		t.Fatalf("NewEmbedder: %v", err)
	}
	got, err := e.EmbedDocuments(t.Context(), []string{"a", "bbb"})
	if err != nil {
		t.Fatalf("EmbedDocuments: %v", err)
	}
	if diff := cmp.Diff(got, [][]float32{{1, 1}, {3, 1}}); diff != "" {
		t.Errorf("EmbedDocuments mismatch (-got +want):\n%s", diff)
	}
	_, err = e.EmbedQuery(t.Context(), "fail")
	if err == nil || !strings.Contains(err.Error(), "langchain ollama/nomic-embed-text: embed: ") {
		t.Errorf("EmbedQuery = %v, want an error wrapped with the provider and model", err)
	}
	if _, err := langchain.NewEmbedder(langchain.Config{Provider: "ollama"}); err == nil {
		t.Error("NewEmbedder accepted a config without a model")
	}
}
