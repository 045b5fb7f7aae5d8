package ragtest_test

import (
	"context"
	"strings"
	"testing"
	"testing/fstest"
	"unicode"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/domain/rag"
	"github.com/parleychat/parley/domain/rag/ragtest"
)

// TestRecallHashEmbedderMemoryIndex runs the recall floor with this
// package's test components and the Ingester; adapters/postgres measures
// the production path.
func TestRecallHashEmbedderMemoryIndex(t *testing.T) {
	s := ragtest.LoadSample(t)
	in := &rag.Ingester{Index: ragtest.NewMemoryIndex(), Embedder: ragtest.HashEmbedder{}, Splitter: ragtest.SectionSplitter{}}
	ragtest.RunRecall(t, in, ragtest.RAGDocuments(s.Docs), s.Questions, ragtest.RecallFloor)
}

// constantEmbedder gives every text the same vector: retrieval by it is
// chance, so recall must fall far below the floor.
type constantEmbedder struct{}

func (constantEmbedder) Dimension() int { return 4 }
func (constantEmbedder) Name() string   { return "constant" }
func (constantEmbedder) Embed(_ context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	for i := range out {
		out[i] = []float32{1, 0, 0, 0}
	}
	return out, nil
}

func TestRecallDetectsAUselessEmbedder(t *testing.T) {
	s := ragtest.LoadSample(t)
	idx := ragtest.NewMemoryIndex()
	if _, err := ragtest.Ingest(t.Context(), constantEmbedder{}, idx, s.Docs); err != nil {
		t.Fatal(err)
	}
	res, err := ragtest.Recall(t.Context(), constantEmbedder{}, idx, s.Questions, ragtest.RecallK)
	if err != nil {
		t.Fatal(err)
	}
	if res.Recall() >= ragtest.RecallFloor || len(res.Misses) != res.Total-res.Found {
		t.Errorf("a constant embedder reached recall %.3f (%d of %d, %d misses listed); the measure cannot fail", res.Recall(), res.Found, res.Total, len(res.Misses))
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
	qlangs := map[string]int{}
	ids := map[string]bool{}
	asked := map[string]bool{}
	for _, q := range qs {
		qlangs[q.Lang]++
		asked[q.Source] = true
		if ids[q.ID] {
			t.Errorf("question ID %s is used twice", q.ID)
		}
		ids[q.ID] = true
		if hangul := strings.IndexFunc(q.Question, func(r rune) bool { return unicode.Is(unicode.Hangul, r) }) >= 0; hangul != (q.Lang == "ko") {
			t.Errorf("question %s is marked %q but is %s written in Hangul", q.ID, q.Lang, map[bool]string{true: "", false: "not"}[hangul])
		}
		if !strings.HasSuffix(q.Source, "."+q.Lang+".md") {
			t.Errorf("question %s in %q expects %s, a document in another language", q.ID, q.Lang, q.Source)
		}
	}
	if len(qs) < 50 || qlangs["ko"] < 20 || qlangs["en"] < 20 {
		t.Errorf("%d questions by language %v; want 50 or more, 20 or more in each language", len(qs), qlangs)
	}
	for _, d := range docs {
		if !asked[d.Source] {
			t.Errorf("no question expects %s", d.Source)
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
		{"no source", "\n" + `{"question":"q"}`, `line 2: needs a "question" and a "source"`},
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
	want := []string{"Intro line.", "## First\n\nOne.\n\nTwo.", "## Empty", "## Last\nThree."}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("sections (-got +want):\n%s", diff)
	}
}

func TestIngest(t *testing.T) {
	idx := ragtest.NewMemoryIndex()
	doc := ragtest.Document{Source: "jobs/x.en.md", Title: "X", Lang: "en", Topic: "jobs", Text: "# X\n\nIntro.\n\n## More\n\nText."}
	for i, want := range []int{2, 0} { // unchanged the second time
		n, err := ragtest.Ingest(t.Context(), ragtest.HashEmbedder{}, idx, []ragtest.Document{doc})
		if err != nil || n != want {
			t.Fatalf("Ingest #%d = %d, %v; want %d chunks written", i+1, n, err, want)
		}
	}
	q, err := ragtest.HashEmbedder{}.Embed(t.Context(), []string{"X More Text"})
	if err != nil {
		t.Fatal(err)
	}
	hits, err := idx.Search(t.Context(), q[0], rag.SearchOptions{K: 2, MinScore: -1})
	if err != nil || len(hits) != 2 {
		t.Fatalf("Search = %v, %v", hits, err)
	}
	for _, h := range hits {
		c := h.Chunk
		if want := rag.NewChunk(doc.Source, "X", c.Index, c.Text, map[string]string{"lang": "en", "topic": "jobs"}); !cmp.Equal(c, want) {
			t.Errorf("chunk %+v, want %+v", c, want)
		}
	}
}

func TestMemoryIndex(t *testing.T) {
	ctx := t.Context()
	idx := ragtest.NewMemoryIndex()
	chunk := func(id, source string) rag.Chunk { return rag.Chunk{ID: id, Source: source, Text: id} }
	err := idx.Upsert(ctx,
		[]rag.Chunk{chunk("a1", "a.md"), chunk("a2", "a.md"), chunk("b1", "b.md"), chunk("c1", "c.md")},
		[][]float32{{1, 0, 0}, {1, 1, 0}, {0, 1, 0}, {-1, 0, 0}})
	if err != nil {
		t.Fatal(err)
	}
	search := func(opts rag.SearchOptions) []string {
		t.Helper()
		hits, err := idx.Search(ctx, []float32{2, 0, 0}, opts)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, h := range hits {
			out = append(out, h.Chunk.ID)
		}
		return out
	}
	tests := []struct {
		name string
		opts rag.SearchOptions
		want []string
	}{
		{"best first", rag.SearchOptions{K: 10, MinScore: -1}, []string{"a1", "a2", "b1", "c1"}},
		{"K", rag.SearchOptions{K: 2, MinScore: -1}, []string{"a1", "a2"}},
		{"MinScore", rag.SearchOptions{K: 10, MinScore: 0.5}, []string{"a1", "a2"}},
		{"Sources", rag.SearchOptions{K: 10, MinScore: -1, Sources: []string{"b.md", "c.md"}}, []string{"b1", "c1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(search(tt.opts), tt.want); diff != "" {
				t.Errorf("Search(%+v) (-got +want):\n%s", tt.opts, diff)
			}
		})
	}
	hits, _ := idx.Search(ctx, []float32{2, 0, 0}, rag.SearchOptions{K: 2, MinScore: -1})
	if hits[0].Score < 0.999999 || hits[1].Score < 0.7071 || hits[1].Score > 0.7072 {
		t.Errorf("scores %v, %v; want cosine 1 and 0.7071", hits[0].Score, hits[1].Score)
	}

	if err := idx.DeleteSource(ctx, "a.md"); err != nil {
		t.Fatal(err)
	}
	srcs, err := idx.Sources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(srcs, map[string][]string{"b.md": {"b1"}, "c.md": {"c1"}}); diff != "" {
		t.Errorf("Sources after deleting a.md (-got +want):\n%s", diff)
	}
	if err := idx.Upsert(ctx, []rag.Chunk{chunk("d1", "d.md")}, [][]float32{{1, 0}}); err == nil {
		t.Error("Upsert accepted a vector of another dimension")
	}
	if _, err := idx.Search(ctx, []float32{1, 0}, rag.SearchOptions{K: 1}); err == nil {
		t.Error("Search accepted a query of another dimension")
	}
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
