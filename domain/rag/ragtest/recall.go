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

// RecallFloor is the lowest recall@RecallK on the sample corpus that a
// production embedder and index may reach. The lexical test components
// reach 1.0 (58 of 58); the floor leaves room for other chunkings.
const RecallFloor = 0.85

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

// RunRecall ingests the sample corpus (docs/corpus) into idx with emb, asks
// its labelled questions and fails t when recall@RecallK is below floor.
// It logs the result and every miss. idx should be empty, or hold only
// this corpus: other documents compete for the top places.
func RunRecall(t *testing.T, emb rag.Embedder, idx rag.Index, floor float64) RecallResult {
	t.Helper()
	s := LoadSample(t)
	n, err := Ingest(t.Context(), emb, idx, s.Docs)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Recall(t.Context(), emb, idx, s.Questions, RecallK)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("recall@%d = %.3f (%d of %d questions; %d documents, %d chunks; embedder %s, index %s)",
		res.K, res.Recall(), res.Found, res.Total, len(s.Docs), n, emb.Name(), idx.Name())
	for _, m := range res.Misses {
		t.Logf("miss %s (%s) %q: want %s, got %v", m.Question.ID, m.Question.Lang, m.Question.Question, m.Question.Source, m.Got)
	}
	if res.Recall() < floor {
		t.Errorf("recall@%d = %.3f, below the floor %.3f", res.K, res.Recall(), floor)
	}
	return res
}
