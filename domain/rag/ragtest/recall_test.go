package ragtest_test

import (
	"context"
	"strings"
	"testing"
	"testing/fstest"
	"unicode"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/domain/chat"
	"github.com/parleychat/parley/domain/rag"
	"github.com/parleychat/parley/domain/rag/ragtest"
)

// TestRecallMemoryIndex runs the sample corpus's labelled questions
// through this package's exact MemoryIndex, SectionSplitter and the
// Ingester, sparse only (BM25); adapters/postgres measures the production
// path.
func TestRecallMemoryIndex(t *testing.T) {
	s := ragtest.LoadSample(t)
	in := &rag.Ingester{Index: ragtest.NewMemoryIndex(0), Splitter: ragtest.SectionSplitter{}}
	// Measured: 58 of 58, MRR 0.957.
	ragtest.RunRecall(t, in, ragtest.RAGDocuments(s.Docs), s.Questions, ragtest.Floor{Recall: 0.98, MRR: 0.94})
}

// TestRecallMemoryIndexHybrid adds HashEmbedder's dense lists to the
// sparse ones, fused: the path a dense embedder takes.
func TestRecallMemoryIndexHybrid(t *testing.T) {
	s := ragtest.LoadSample(t)
	emb := ragtest.HashEmbedder{}
	in := &rag.Ingester{Index: ragtest.NewMemoryIndex(emb.Dimension()), Embedder: emb, Splitter: ragtest.SectionSplitter{}}
	// Measured: 58 of 58, MRR 0.983.
	ragtest.RunRecall(t, in, ragtest.RAGDocuments(s.Docs), s.Questions, ragtest.Floor{Recall: 0.98, MRR: 0.97})
}

// fixedRetriever gives every question the same passage: retrieval by it
// is chance, so recall must fall far below any floor.
type fixedRetriever struct{ doc string }

func (f fixedRetriever) Retrieve(context.Context, string) (chat.Retrieval, error) {
	return chat.Retrieval{Passages: []chat.Passage{{Document: f.doc}}}, nil
}

func TestEvaluateDetectsAUselessRetriever(t *testing.T) {
	s := ragtest.LoadSample(t)
	e, err := ragtest.Evaluate(t.Context(), fixedRetriever{"housing/youth-rent-support.ko.md"}, s.Questions)
	if err != nil {
		t.Fatal(err)
	}
	sc := e.Score(nil)
	if sc.Recall() >= 0.2 || len(e.Misses()) != sc.Total-sc.Correct || sc.Correct == 0 {
		t.Errorf("a fixed retriever reached recall %.3f (%d of %d, %d misses listed); the measure cannot fail", sc.Recall(), sc.Correct, sc.Total, len(e.Misses()))
	}
	// Off-topic questions want no passage at all.
	off := []ragtest.Question{{ID: "o", Lang: "en", Kind: ragtest.KindNone, Question: "weather?"}}
	if e, _ := ragtest.Evaluate(t.Context(), fixedRetriever{"x.md"}, off); e.Score(nil).Correct != 0 {
		t.Errorf("a passage for an off-topic question counted as correct")
	}
}

func TestScore(t *testing.T) {
	e := ragtest.Evaluation{Outcomes: []ragtest.Outcome{
		{Question: ragtest.Question{Lang: "ko", Kind: "same", Sources: []string{"a"}}, Got: []string{"b", "a"}, Rank: 2},
		{Question: ragtest.Question{Lang: "ko", Kind: "same", Sources: []string{"a"}}, Got: []string{"a"}, Rank: 1},
		{Question: ragtest.Question{Lang: "en", Kind: "same", Sources: []string{"a"}}, Got: []string{"b"}},
		{Question: ragtest.Question{Lang: "en", Kind: "cross", Sources: []string{"a"}}},
	}}
	if s := e.Score(ragtest.SameLanguage); s.Total != 3 || s.Correct != 2 || s.MRR() != 0.5 {
		t.Errorf("same-language score %+v (MRR %v), want 2 of 3, MRR (1/2 + 1)/3", s, s.MRR())
	}
	names, _ := e.Groups()
	if diff := cmp.Diff(names, []string{"ko", "en", "cross-en"}); diff != "" {
		t.Errorf("groups (-got +want):\n%s", diff)
	}
}

// TestCorpus checks the sample corpus is what its README promises.
func TestCorpus(t *testing.T) {
	s := ragtest.LoadSample(t) // also checks each question's document is in the corpus
	docs, qs := s.Docs, s.Questions
	langs := map[string]int{}
	for _, d := range docs {
		langs[d.Lang]++
		words := len(strings.Fields(d.Text))
		if words < 140 || words > 420 {
			t.Errorf("%s has %d words; documents are 150 to 400 words long", d.Source, words)
		}
		if sections, _ := (ragtest.SectionSplitter{}).Split(d.Text); len(sections) < 2 {
			t.Errorf("%s has fewer than two sections", d.Source)
		}
	}
	if len(docs) < 20 || langs["ko"] < 10 || langs["en"] < 10 || langs[""] != 0 {
		t.Errorf("corpus has %d documents by language %v; want 20 or more, 10 or more each in Korean and English, none unmarked", len(docs), langs)
	}
	ids := map[string]bool{}
	checkQuestion := func(q ragtest.Question) {
		t.Helper()
		if ids[q.ID] {
			t.Errorf("question ID %s is used twice", q.ID)
		}
		ids[q.ID] = true
		if hangul := strings.IndexFunc(q.Question, func(r rune) bool { return unicode.Is(unicode.Hangul, r) }) >= 0; hangul != (q.Lang == "ko") {
			t.Errorf("question %s is marked %q but is %s written in Hangul", q.ID, q.Lang, map[bool]string{true: "", false: "not"}[hangul])
		}
		inLang := false
		for _, src := range q.Answers() {
			inLang = inLang || strings.HasSuffix(src, "."+q.Lang+".md")
		}
		if want := q.Kind == ragtest.KindSame; inLang != want {
			t.Errorf("question %s is of kind %q, but a document in its language answers it: %v", q.ID, q.Kind, inLang)
		}
	}
	qlangs := map[string]int{}
	asked := map[string]bool{}
	for _, q := range qs {
		qlangs[q.Lang]++
		asked[q.Source] = true
		checkQuestion(q)
	}
	if len(qs) < 50 || qlangs["ko"] < 20 || qlangs["en"] < 20 {
		t.Errorf("%d questions by language %v; want 50 or more, 20 or more in each language", len(qs), qlangs)
	}
	for _, d := range docs {
		if !asked[d.Source] {
			t.Errorf("no labelled question expects %s", d.Source)
		}
	}
	// The paraphrased and off-topic sets, each half as docs/corpus/README.md says.
	for _, tt := range []struct {
		name string
		want map[string]int
	}{
		{ragtest.SetParaphrasesDev, map[string]int{"ko": 20, "en": 20, "cross-ko": 5, "cross-en": 5}},
		{ragtest.SetParaphrasesTest, map[string]int{"ko": 20, "en": 20, "cross-ko": 5, "cross-en": 5}},
		{ragtest.SetOffTopicDev, map[string]int{"none-ko": 6, "none-en": 6}},
		{ragtest.SetOffTopicTest, map[string]int{"none-ko": 6, "none-en": 6}},
	} {
		got := map[string]int{}
		for _, q := range s.Load(t, tt.name) {
			got[ragtest.GroupOf(q)]++
			checkQuestion(q)
		}
		if diff := cmp.Diff(got, tt.want); diff != "" {
			t.Errorf("%s: questions by group (-got +want):\n%s", tt.name, diff)
		}
	}
}

func TestLoadCorpusRejectsADocumentWithoutTitle(t *testing.T) {
	fsys := fstest.MapFS{
		"README.md":         {Data: []byte("not a document")},
		"housing/a.ko.md":   {Data: []byte("# 제목\n\n본문")},
		"housing/b.en.md":   {Data: []byte("Body without a title.\n")},
		"questions.jsonl":   {Data: []byte("")},
		"housing/notes.txt": {Data: []byte("ignored")},
	}
	_, err := ragtest.LoadCorpus(fsys)
	if err == nil || !strings.Contains(err.Error(), "housing/b.en.md") || !strings.Contains(err.Error(), "# Title") {
		t.Fatalf("LoadCorpus = %v; want an error naming housing/b.en.md and the missing title", err)
	}
	delete(fsys, "housing/b.en.md")
	docs, err := ragtest.LoadCorpus(fsys)
	if err != nil {
		t.Fatal(err)
	}
	want := []ragtest.Document{{Source: "housing/a.ko.md", Title: "제목", Lang: "ko", Topic: "housing", Text: "# 제목\n\n본문"}}
	if diff := cmp.Diff(docs, want); diff != "" {
		t.Errorf("LoadCorpus (-got +want):\n%s", diff)
	}
}

func TestLoadQuestionsErrors(t *testing.T) {
	tests := []struct {
		name, data, want string
	}{
		{"unknown field", `{"question":"q","source":"a.md","expected":"b.md"}`, `line 1: json: unknown field "expected"`},
		{"no source", "\n" + `{"question":"q"}`, `line 2: needs a "source" or "sources"`},
		{"no question", "# a comment\n" + `{"source":"a.md"}`, `line 2: needs a "question"`},
		{"both sources", `{"question":"q","source":"a.md","sources":["b.md"]}`, `not both`},
		{"off-topic with a source", `{"question":"q","kind":"none","sources":["b.md"]}`, `unless (and only if) its kind is none`},
		{"unknown kind", `{"question":"q","kind":"other","source":"a.md"}`, `kind "other"`},
		{"not JSON", `question: q`, "line 1: invalid character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ragtest.LoadQuestions(fstest.MapFS{"q.jsonl": {Data: []byte(tt.data)}}, "q.jsonl")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("LoadQuestions = %v; want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestSectionSplitter(t *testing.T) {
	got, err := ragtest.SectionSplitter{}.Split("# X\r\n\nIntro line.\n\n## First\n\nOne.\n\nTwo.\n\n## Empty\n## Last\nThree.\n")
	if err != nil {
		t.Fatal(err)
	}
	want := []rag.Section{{Text: "Intro line."}, {Heading: "First", Text: "One.\n\nTwo."}, {Heading: "Last", Text: "Three."}}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("sections (-got +want):\n%s", diff)
	}
}

func TestIngest(t *testing.T) {
	idx := ragtest.NewMemoryIndex(0)
	doc := ragtest.Document{Source: "jobs/x.en.md", Title: "X", Lang: "en", Topic: "jobs", Text: "# X\n\nIntro.\n\n## More\n\nText."}
	for i, want := range []int{2, 0} { // unchanged the second time
		n, err := ragtest.Ingest(t.Context(), nil, idx, []ragtest.Document{doc})
		if err != nil || n != want {
			t.Fatalf("Ingest #%d = %d, %v; want %d chunks written", i+1, n, err, want)
		}
	}
	res, err := idx.Search(t.Context(), rag.Query{Sparse: []rag.SparseVector{rag.QueryTerms("Intro More Text")}}, rag.SearchOptions{K: 2})
	if err != nil || len(res.Hits) != 2 {
		t.Fatalf("Search = %v, %v", res, err)
	}
	for _, h := range res.Hits {
		c := h.Chunk
		meta := map[string]string{"lang": "en", "topic": "jobs"}
		if c.Index == 1 {
			meta[rag.MetaSection] = "More"
		}
		if want := rag.NewChunk(doc.Source, "X", c.Index, c.Text, meta); !cmp.Equal(c, want) {
			t.Errorf("chunk %+v, want %+v", c, want)
		}
	}
}

// TestMemoryIndex runs the index contract against the reference index:
// its sparse cases check the BM25 arithmetic by hand.
func TestMemoryIndex(t *testing.T) {
	ragtest.RunIndexTests(t, func(t *testing.T, dim int) rag.Index { return ragtest.NewMemoryIndex(dim) })
}

func TestHashEmbedder(t *testing.T) {
	e := ragtest.HashEmbedder{Dim: 256}
	vecs, err := e.Embed(t.Context(), []string{"청년 월세를 지원합니다", "청년월세 지원은", "Rent support for young people", ""})
	if err != nil {
		t.Fatal(err)
	}
	cos := func(a, b []float32) float64 {
		var d float64
		for i := range a {
			d += float64(a[i]) * float64(b[i])
		}
		return d
	}
	if len(vecs) != 4 || len(vecs[0]) != 256 || e.Dimension() != 256 || e.Name() != "ragtest/hash-256" {
		t.Fatalf("got %d vectors of %d dimensions from %s", len(vecs), len(vecs[0]), e.Name())
	}
	if c := cos(vecs[0], vecs[1]); c < 0.5 {
		t.Errorf("Korean texts sharing stems have cosine %.2f; want at least 0.5", c)
	}
	if c := cos(vecs[0], vecs[0]); c < 0.9999 || c > 1.0001 {
		t.Errorf("vectors are not unit length: %v", c)
	}
	if c := cos(vecs[3], vecs[3]); c != 0 {
		t.Errorf("the empty text's vector is not zero: %v", c)
	}
}
