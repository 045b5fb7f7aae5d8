package ragtest

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/parleychat/parley/domain/rag"
)

// RecallK is the K of RunRecall: an answer is given four passages.
const RecallK = 4

// RecallFloor is the lowest recall@RecallK on the sample corpus that this
// package's components (HashEmbedder, MemoryIndex, SectionSplitter) may
// reach through the Ingester. They reach 1.0 (58 of 58); the floor leaves
// room for two misses. The production pairing, measured through the
// production splitter, has its own floor in adapters/postgres.
const RecallFloor = 0.95

// RecallResult is how well an index found the expected documents.
type RecallResult struct {
	K      int
	Total  int
	Found  int            // questions whose document was among the top K chunks
	ByLang map[string]int // questions asked, by language
	Misses []Miss
}

// Recall is Found/Total.
func (r RecallResult) Recall() float64 {
	if r.Total == 0 {
		return 0
	}
	return float64(r.Found) / float64(r.Total)
}

// Miss is a question whose document was not among the top K.
type Miss struct {
	Question Question
	Got      []string // the sources of the top K chunks, best first
}

// Recall asks every question, embedded by emb, of idx and counts those whose
// expected source is among the sources of the top k hits.
func Recall(ctx context.Context, emb rag.Embedder, idx rag.Index, qs []Question, k int) (RecallResult, error) {
	res := RecallResult{K: k, Total: len(qs), ByLang: map[string]int{}}
	texts := make([]string, len(qs))
	for i, q := range qs {
		texts[i] = q.Question
		res.ByLang[q.Lang]++
	}
	vecs, err := emb.Embed(ctx, texts)
	if err != nil {
		return res, fmt.Errorf("recall: embed %d questions with %s: %w", len(qs), emb.Name(), err)
	}
	if len(vecs) != len(qs) {
		return res, fmt.Errorf("recall: %s returned %d vectors for %d questions", emb.Name(), len(vecs), len(qs))
	}
	for i, q := range qs {
		hits, err := idx.Search(ctx, vecs[i], rag.SearchOptions{K: k})
		if err != nil {
			return res, fmt.Errorf("recall: search %s for %s: %w", idx.Name(), q.ID, err)
		}
		got := make([]string, len(hits))
		for j, h := range hits {
			got[j] = h.Chunk.Source
		}
		if slices.Contains(got, q.Source) {
			res.Found++
		} else {
			res.Misses = append(res.Misses, Miss{Question: q, Got: got})
		}
	}
	return res, nil
}

// RunRecall syncs docs into in.Index with in, asks qs of the index and
// fails t when recall@RecallK is below floor. It logs the result and every
// miss. The index should be empty, or hold only these documents: others
// compete for the top places. Pass the sample corpus (LoadSample) as the
// production path reads it, through the production splitter, to measure
// what users get.
func RunRecall(t *testing.T, in *rag.Ingester, docs []rag.Document, qs []Question, floor float64) RecallResult {
	t.Helper()
	rep, err := in.Sync(t.Context(), docs, rag.SyncOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Recall(t.Context(), in.Embedder, in.Index, qs, RecallK)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("recall@%d = %.3f (%d of %d questions; %d documents, %d chunks; embedder %s, index %s)",
		res.K, res.Recall(), res.Found, res.Total, len(docs), rep.Chunks, in.Embedder.Name(), in.Index.Name())
	for _, m := range res.Misses {
		t.Logf("miss %s (%s) %q: want %s, got %v", m.Question.ID, m.Question.Lang, m.Question.Question, m.Question.Source, m.Got)
	}
	if res.Recall() < floor {
		t.Errorf("recall@%d = %.3f, below the floor %.3f", res.K, res.Recall(), floor)
	}
	return res
}
