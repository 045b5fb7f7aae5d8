package postgres_test

import (
	"path/filepath"
	"testing"

	"github.com/parleychat/parley/adapters/document"
	"github.com/parleychat/parley/adapters/langchain"
	"github.com/parleychat/parley/adapters/lexical"
	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/adapters/postgres/pgtest"
	"github.com/parleychat/parley/domain/rag"
	"github.com/parleychat/parley/domain/rag/ragtest"
)

// lexicalRecallFloor is the recall@4 the default pairing (the built-in
// lexical embedder and the embedded index), fed as `chatctl ingest` feeds
// it, must keep on the labelled questions of docs/corpus. Measured at
// 0.879 (51 of 58) when it was set; embedding chunk text without its
// document's title gave 0.845 (49 of 58). The floor leaves room for one
// more miss, not for that regression.
const lexicalRecallFloor = 0.86

// TestRecallLexicalEmbeddedIndex measures retrieval quality of what chatd
// uses by default, on the sample corpus and its labelled questions, through
// the production ingest path: document.Load, the langchain splitter at its
// defaults and rag.Ingester, as `chatctl ingest docs/corpus` runs them.
func TestRecallLexicalEmbeddedIndex(t *testing.T) {
	s := ragtest.LoadSample(t)
	docs := make([]rag.Document, len(s.Docs))
	for i, d := range s.Docs {
		doc, err := document.Load(filepath.Join(s.Dir, filepath.FromSlash(d.Source)), d.Source)
		if err != nil {
			t.Fatal(err)
		}
		docs[i] = doc
	}
	splitter, err := langchain.NewSplitter(langchain.SplitterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	emb, err := lexical.New(lexical.Config{})
	if err != nil {
		t.Fatal(err)
	}
	idx, err := postgres.OpenRAGIndex(t.Context(), pgtest.NewPool(t, 0), postgres.RAGIndexConfig{
		Collection: "recall", Dimension: emb.Dimension(),
	})
	if err != nil {
		t.Fatal(err)
	}
	in := &rag.Ingester{Index: idx, Embedder: emb, Splitter: splitter}
	ragtest.RunRecall(t, in, docs, s.Questions, lexicalRecallFloor)
}
