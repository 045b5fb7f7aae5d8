package langchain_test

import (
	"cmp"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/parleychat/parley/adapters/langchain"
	"github.com/parleychat/parley/domain/chat"
)

// TestOllamaIntegration asks a real Ollama server for a short answer. It
// runs only when PARLEY_OLLAMA_URL is set (e.g. http://localhost:11434);
// PARLEY_OLLAMA_MODEL picks the model, "llama3.2" by default, which must
// already be pulled.
func TestOllamaIntegration(t *testing.T) {
	url := os.Getenv("PARLEY_OLLAMA_URL")
	if url == "" {
		// Printed so that the skip shows without -v (when go test runs in
		// local directory mode; package list mode hides passing output).
		const msg = "SKIP: PARLEY_OLLAMA_URL not set; Ollama integration test not run"
		fmt.Println(msg)
		t.Skip(msg)
	}
	cfg := langchain.Config{
		Provider: langchain.ProviderOllama,
		BaseURL:  url,
		Model:    cmp.Or(os.Getenv("PARLEY_OLLAMA_MODEL"), "llama3.2"),
		Timeout:  5 * time.Minute, // a cold model may take a while to load
	}
	g := newTestGenerator(t, cfg)
	var deltas []string
	err := g.Generate(t.Context(), chat.Prompt{
		Context:  []chat.Passage{{Document: "colors.md", Text: "The sky over Parley's office is painted green."}},
		Question: "According to the document, what color is the sky over Parley's office? Answer in one word.",
	}, func(d string) error {
		deltas = append(deltas, d)
		return nil
	})
	if err != nil {
		t.Fatalf("Generate with %s: %v", g.Name(), err)
	}
	answer := strings.Join(deltas, "")
	t.Logf("%s answered in %d deltas: %q", g.Name(), len(deltas), answer)
	if len(deltas) == 0 || !utf8.ValidString(answer) {
		t.Errorf("answer %q in %d deltas, want a non-empty valid UTF-8 stream", answer, len(deltas))
	}
	if !strings.Contains(strings.ToLower(answer), "green") {
		t.Errorf("answer %q does not use the document's %q", answer, "green")
	}
}
