package ragtest

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/parleychat/parley/domain/chat"
	"github.com/parleychat/parley/domain/rag"
)

// RecallK is the K of an evaluation: an answer is given four passages.
const RecallK = 4

// Outcome is what retrieval gave one question.
type Outcome struct {
	Question Question
	// Got are the sources of the passages, best first.
	Got []string
	// Rank is the rank (from 1) of the first passage from a document that
	// answers the question; 0 if none did.
	Rank int
}

// Correct reports whether the outcome is what the question wants: one of
// its documents among the passages, or, for an off-topic question, no
// passage at all.
func (o Outcome) Correct() bool {
	if o.Question.Kind == KindNone {
		return len(o.Got) == 0
	}
	return o.Rank > 0
}

// Evaluation is how retrieval did on a set of questions.
type Evaluation struct {
	Outcomes []Outcome
}

// Score sums up outcomes.
type Score struct {
	Total   int
	Correct int     // found (recall), or for off-topic questions correctly empty
	RR      float64 // the sum of reciprocal ranks
}

// Recall is Correct/Total: recall@K, or for off-topic questions the share
// answered with nothing.
func (s Score) Recall() float64 {
	if s.Total == 0 {
		return 0
	}
	return float64(s.Correct) / float64(s.Total)
}

// MRR is the mean reciprocal rank of the first answering passage, 0 for a
// question none answered.
func (s Score) MRR() float64 {
	if s.Total == 0 {
		return 0
	}
	return s.RR / float64(s.Total)
}

// Score sums up the outcomes of the questions keep accepts (all if nil).
func (e Evaluation) Score(keep func(Question) bool) Score {
	var s Score
	for _, o := range e.Outcomes {
		if keep != nil && !keep(o.Question) {
			continue
		}
		s.Total++
		if o.Correct() {
			s.Correct++
		}
		if o.Rank > 0 {
			s.RR += 1 / float64(o.Rank)
		}
	}
	return s
}

// Misses returns the outcomes that are not Correct.
func (e Evaluation) Misses() []Outcome {
	var out []Outcome
	for _, o := range e.Outcomes {
		if !o.Correct() {
			out = append(out, o)
		}
	}
	return out
}

// Groups returns the (language, kind) pairs of the questions, sorted, as
// "ko", "en" for same-language questions and "cross-ko", "cross-en" and
// "none-ko", "none-en" for the others, with a filter for each.
func (e Evaluation) Groups() ([]string, map[string]func(Question) bool) {
	filters := map[string]func(Question) bool{}
	for _, o := range e.Outcomes {
		name := GroupOf(o.Question)
		if filters[name] == nil {
			filters[name] = func(q Question) bool { return GroupOf(q) == name }
		}
	}
	names := make([]string, 0, len(filters))
	for n := range filters {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		ki, kj := strings.Contains(names[i], "-"), strings.Contains(names[j], "-")
		if ki != kj {
			return !ki
		}
		return names[i] > names[j] // ko before en
	})
	return names, filters
}

// GroupOf names q's group: its language, prefixed by its kind unless the
// kind is KindSame.
func GroupOf(q Question) string {
	if q.Kind == "" || q.Kind == KindSame {
		return q.Lang
	}
	return q.Kind + "-" + q.Lang
}

// SameLanguage accepts same-language questions.
func SameLanguage(q Question) bool { return q.Kind == "" || q.Kind == KindSame }

// Evaluate asks r every question and records where the first passage from
// an answering document ranked.
func Evaluate(ctx context.Context, r chat.Retriever, qs []Question) (Evaluation, error) {
	var e Evaluation
	for _, q := range qs {
		got, err := r.Retrieve(ctx, q.Question)
		if err != nil {
			return e, fmt.Errorf("evaluate: question %s: %w", q.ID, err)
		}
		o := Outcome{Question: q}
		for i, p := range got.Passages {
			o.Got = append(o.Got, p.Document)
			if o.Rank == 0 && slices.Contains(q.Answers(), p.Document) {
				o.Rank = i + 1
			}
		}
		e.Outcomes = append(e.Outcomes, o)
	}
	return e, nil
}

// Floor is the least an evaluation must reach, on the same-language
// questions of a set (all of an off-topic set).
type Floor struct {
	Recall, MRR float64
	// HeldOut hides the misses: a held-out set is scored, never read.
	HeldOut bool
}

// RunRecall syncs docs into in.Index with in, asks qs through a Retriever
// with the default configuration over in's index and embedder, and fails
// t when the same-language questions' recall@RecallK or MRR is below
// floor. It logs the figures by group and, unless floor.HeldOut, every
// miss. The index should be empty, or hold only these documents: others
// compete for the top places. Pass the sample corpus (LoadSample) as the
// production path reads it, through the production splitter, to measure
// what users get.
func RunRecall(t *testing.T, in *rag.Ingester, docs []rag.Document, qs []Question, floor Floor) Evaluation {
	t.Helper()
	rep, err := in.Sync(t.Context(), docs, rag.SyncOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := rag.NewRetriever(rag.RetrieverDeps{Index: in.Index, Embedder: in.Embedder}, rag.RetrieverConfig{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := Evaluate(t.Context(), r, qs)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d questions; %d documents, %d chunks written; %s, index %s", len(qs), len(docs), rep.Chunks, r.Method(), in.Index.Name())
	names, filters := e.Groups()
	for _, n := range names {
		s := e.Score(filters[n])
		t.Logf("  %-9s recall@%d %.3f (%d of %d)  MRR %.3f", n, RecallK, s.Recall(), s.Correct, s.Total, s.MRR())
	}
	if !floor.HeldOut {
		for _, m := range e.Misses() {
			t.Logf("miss %s (%s) %q: want %v, got %v", m.Question.ID, GroupOf(m.Question), m.Question.Question, m.Question.Answers(), m.Got)
		}
	}
	keep := SameLanguage
	if len(qs) > 0 && qs[0].Kind == KindNone {
		keep = nil
	}
	if s := e.Score(keep); s.Recall() < floor.Recall || s.MRR() < floor.MRR {
		t.Errorf("recall@%d %.3f and MRR %.3f (%d of %d); the floor is %.3f and %.3f", RecallK, s.Recall(), s.MRR(), s.Correct, s.Total, floor.Recall, floor.MRR)
	}
	return e
}
