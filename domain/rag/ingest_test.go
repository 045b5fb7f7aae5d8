package rag_test

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/rag"
)

// fakeIndex is a map-backed rag.Index that counts writes.
type fakeIndex struct {
	dim      int // 2, or 0 without an embedder
	chunks   map[string]rag.Chunk
	vectors  map[string]rag.Vectors
	writes   []string // "upsert src", "delete src", "replace src"
	replacer bool
}

func newFakeIndex() *fakeIndex {
	return &fakeIndex{dim: 2, chunks: map[string]rag.Chunk{}, vectors: map[string]rag.Vectors{}, replacer: true}
}

func (f *fakeIndex) Name() string { return "fake" }
func (f *fakeIndex) Upsert(_ context.Context, cs []rag.Chunk, vs []rag.Vectors) error {
	if err := rag.CheckUpsert(cs, vs, f.dim); err != nil {
		return err
	}
	for i, c := range cs {
		f.chunks[c.ID] = c
		f.vectors[c.ID] = vs[i]
	}
	if len(cs) > 0 {
		f.writes = append(f.writes, "upsert "+cs[0].Source)
	}
	return nil
}
func (f *fakeIndex) DeleteSource(_ context.Context, src string) error {
	f.writes = append(f.writes, "delete "+src)
	for id, c := range f.chunks {
		if c.Source == src {
			delete(f.chunks, id)
		}
	}
	return nil
}
func (f *fakeIndex) Sources(context.Context) (map[string][]string, error) {
	out := map[string][]string{}
	for id, c := range f.chunks {
		out[c.Source] = append(out[c.Source], id)
	}
	return out, nil
}
func (f *fakeIndex) Search(context.Context, rag.Query, rag.SearchOptions) (rag.Result, error) {
	return rag.Result{}, errors.New("not used")
}

// replacingIndex adds ReplaceSource to fakeIndex.
type replacingIndex struct{ *fakeIndex }

func (r replacingIndex) ReplaceSource(ctx context.Context, src string, cs []rag.Chunk, vs []rag.Vectors) error {
	if err := rag.CheckReplace(src, cs, vs, r.dim); err != nil {
		return err
	}
	for id, c := range r.chunks {
		if c.Source == src {
			delete(r.chunks, id)
		}
	}
	for i, c := range cs {
		r.chunks[c.ID] = c
		r.vectors[c.ID] = vs[i]
	}
	r.writes = append(r.writes, "replace "+src)
	return nil
}

// fakeEmbedder gives each text the vector (len, 1) and records call sizes.
type fakeEmbedder struct{ calls []int }

func (e *fakeEmbedder) Name() string   { return "fake-2" }
func (e *fakeEmbedder) Dimension() int { return 2 }
func (e *fakeEmbedder) Embed(_ context.Context, texts []string) ([][]float32, error) {
	e.calls = append(e.calls, len(texts))
	out := make([][]float32, len(texts))
	for i, t := range texts {
		out[i] = []float32{float32(len(t)), 1}
	}
	return out, nil
}

// paragraphs splits on blank lines; a paragraph starting with "## " is
// the heading of the ones after it.
type paragraphs struct{}

func (paragraphs) Split(text string) ([]rag.Section, error) {
	var out []rag.Section
	heading := ""
	for _, p := range strings.Split(text, "\n\n") {
		p = strings.TrimSpace(p)
		if h, ok := strings.CutPrefix(p, "## "); ok {
			heading = h
			continue
		}
		if p != "" {
			out = append(out, rag.Section{Heading: heading, Text: p})
		}
	}
	return out, nil
}

func newIngester(idx rag.Index) (*rag.Ingester, *fakeEmbedder) {
	e := &fakeEmbedder{}
	return &rag.Ingester{Index: idx, Embedder: e, Splitter: paragraphs{}}, e
}

var corpus = []rag.Document{
	{Source: "housing/rent.md", Title: "월세", Text: "청년 월세 지원은 월 20만 원입니다.\n\n신청은 복지로에서 합니다.", Metadata: map[string]string{"topic": "housing"}},
	{Source: "faq.txt", Title: "faq", Text: "How do I apply?\n\nOnline."},
	{Source: "jobs/work.html", Title: "Work", Text: "Job seekers get help."},
}

func sync(t *testing.T, in *rag.Ingester, docs []rag.Document, opts rag.SyncOptions) rag.Report {
	t.Helper()
	rep, err := in.Sync(t.Context(), docs, opts)
	if err != nil {
		t.Fatalf("Sync: %v", err)
	}
	return rep
}

func TestSyncAddsThenWritesNothingForUnchanged(t *testing.T) {
	idx := newFakeIndex()
	in, emb := newIngester(replacingIndex{idx})
	var progress []rag.Progress
	in.Progress = func(p rag.Progress) { progress = append(progress, p) }

	rep := sync(t, in, corpus, rag.SyncOptions{})
	want := rag.Report{Added: []string{"faq.txt", "housing/rent.md", "jobs/work.html"}, Chunks: 5}
	if diff := cmp.Diff(want, rep); diff != "" {
		t.Errorf("first Sync report (-want +got):\n%s", diff)
	}
	if got, want := progress[len(progress)-1], (rag.Progress{Done: 5, Total: 5, Source: "jobs/work.html"}); got != want {
		t.Errorf("last progress = %+v, want %+v", got, want)
	}
	for _, c := range idx.chunks {
		if c.Source == "housing/rent.md" && (c.Metadata["lang"] != "ko" || c.Metadata["topic"] != "housing" || c.Title != "월세") {
			t.Errorf("chunk %d of rent.md has title %q metadata %v, want 월세, lang ko and topic housing", c.Index, c.Title, c.Metadata)
		}
	}

	idx.writes, emb.calls = nil, nil
	rep = sync(t, in, corpus, rag.SyncOptions{Prune: true})
	want = rag.Report{Unchanged: []string{"faq.txt", "housing/rent.md", "jobs/work.html"}}
	if diff := cmp.Diff(want, rep); diff != "" {
		t.Errorf("second Sync report (-want +got):\n%s", diff)
	}
	if len(idx.writes) != 0 || len(emb.calls) != 0 {
		t.Errorf("re-ingesting unchanged documents wrote %v and embedded %v: want nothing", idx.writes, emb.calls)
	}
}

func TestSyncReplacesChangedDocuments(t *testing.T) {
	for _, replacer := range []bool{true, false} {
		idx := newFakeIndex()
		var x rag.Index = idx
		if replacer {
			x = replacingIndex{idx}
		}
		in, _ := newIngester(x)
		sync(t, in, corpus, rag.SyncOptions{})
		changed := slices.Clone(corpus)
		changed[1].Text = "How do I apply?\n\nBy post, since May."
		idx.writes = nil
		rep := sync(t, in, changed, rag.SyncOptions{})
		if diff := cmp.Diff([]string{"faq.txt"}, rep.Updated); diff != "" || rep.Chunks != 2 {
			t.Errorf("replacer=%v: Updated %v, Chunks %d; want [faq.txt], 2", replacer, rep.Updated, rep.Chunks)
		}
		wantWrites := []string{"delete faq.txt", "upsert faq.txt"}
		if replacer {
			wantWrites = []string{"replace faq.txt"}
		}
		if diff := cmp.Diff(wantWrites, idx.writes); diff != "" {
			t.Errorf("replacer=%v: writes (-want +got):\n%s", replacer, diff)
		}
		var texts []string
		for _, c := range idx.chunks {
			if c.Source == "faq.txt" {
				texts = append(texts, c.Text)
			}
		}
		sort.Strings(texts)
		if diff := cmp.Diff([]string{"By post, since May.", "How do I apply?"}, texts); diff != "" {
			t.Errorf("replacer=%v: faq.txt chunks (-want +got):\n%s", replacer, diff)
		}
	}
}

func TestSyncPrunes(t *testing.T) {
	idx := newFakeIndex()
	in, _ := newIngester(idx)
	sync(t, in, corpus, rag.SyncOptions{})
	rest := corpus[:1]

	if rep := sync(t, in, rest, rag.SyncOptions{}); len(rep.Removed) != 0 {
		t.Errorf("without Prune, Sync removed %v", rep.Removed)
	}
	rep := sync(t, in, rest, rag.SyncOptions{Prune: true, Scope: func(s string) bool { return strings.HasPrefix(s, "jobs/") }})
	if diff := cmp.Diff([]string{"jobs/work.html"}, rep.Removed); diff != "" {
		t.Errorf("Prune with a scope removed (-want +got):\n%s", diff)
	}
	rep = sync(t, in, rest, rag.SyncOptions{Prune: true})
	if diff := cmp.Diff([]string{"faq.txt"}, rep.Removed); diff != "" {
		t.Errorf("Prune removed (-want +got):\n%s", diff)
	}
	srcs, _ := idx.Sources(t.Context())
	if len(srcs) != 1 || srcs["housing/rent.md"] == nil {
		t.Errorf("sources left %v, want only housing/rent.md", srcs)
	}

	// A document that became empty is removed too.
	emptied := []rag.Document{{Source: "housing/rent.md", Text: " \n\n "}}
	rep = sync(t, in, emptied, rag.SyncOptions{})
	if diff := cmp.Diff(rag.Report{Removed: []string{"housing/rent.md"}, Empty: []string{"housing/rent.md"}}, rep); diff != "" {
		t.Errorf("emptied document (-want +got):\n%s", diff)
	}
}

func TestSyncBatchesEmbedCalls(t *testing.T) {
	in, emb := newIngester(newFakeIndex())
	in.BatchSize = 2
	docs := []rag.Document{
		{Source: "a", Text: "1"},
		{Source: "b", Text: "1"},
		{Source: "c", Text: "1\n\n2\n\n3"},
	}
	sync(t, in, docs, rag.SyncOptions{})
	if diff := cmp.Diff([]int{2, 2, 1}, emb.calls); diff != "" {
		t.Errorf("Embed call sizes (-want +got):\n%s", diff)
	}
}

func TestSyncRejectsBadDocuments(t *testing.T) {
	in, _ := newIngester(newFakeIndex())
	for _, docs := range [][]rag.Document{
		{{Source: "", Text: "x"}},
		{{Source: "a", Text: "x"}, {Source: "a", Text: "y"}},
	} {
		_, err := in.Sync(t.Context(), docs, rag.SyncOptions{})
		if code := domain.ErrorCode(err); code != domain.EINVALID {
			t.Errorf("Sync(%v): error %v (code %q), want %q", docs, err, code, domain.EINVALID)
		}
	}
}

func TestChunkID(t *testing.T) {
	id := rag.ChunkID("a.md", 0, rag.TextHash("x"))
	if _, err := domain.ParseUUID(id); err != nil || id[14] != '5' {
		t.Fatalf("ChunkID = %q, want a version 5 UUID", id)
	}
	for _, other := range []string{
		rag.ChunkID("b.md", 0, rag.TextHash("x")),
		rag.ChunkID("a.md", 1, rag.TextHash("x")),
		rag.ChunkID("a.md", 0, rag.TextHash("y")),
	} {
		if other == id {
			t.Errorf("ChunkID ignores one of its inputs")
		}
	}
	if again := rag.ChunkID("a.md", 0, rag.TextHash("x")); again != id {
		t.Errorf("ChunkID is not deterministic: %s then %s", id, again)
	}
	if c := rag.NewChunk("a.md", "", 0, "x", nil); c.ID != id || c.Hash != rag.TextHash("x") {
		t.Errorf("NewChunk without a title = %+v, want ID %s", c, id)
	}
	// The title and section are indexed with the text, so they are part of the ID.
	c := rag.NewChunk("a.md", "A", 0, "x", nil)
	if want := rag.ChunkID("a.md", 0, rag.TextHash("A\n\nx")); c.ID != want || c.Hash != rag.TextHash("x") {
		t.Errorf("NewChunk = %+v, want ID %s and the hash of its text", c, want)
	}
	if other := rag.NewChunk("a.md", "B", 0, "x", nil); other.ID == c.ID {
		t.Errorf("NewChunk gives a retitled chunk the same ID %s", c.ID)
	}
	s := rag.NewChunk("a.md", "A", 0, "x", map[string]string{rag.MetaSection: "S"})
	if want := rag.ChunkID("a.md", 0, rag.TextHash("A\n\nS\n\nx")); s.ID != want {
		t.Errorf("NewChunk in section S has ID %s, want %s", s.ID, want)
	}
}

func TestSyncEmbedsTitleWithText(t *testing.T) {
	idx := newFakeIndex()
	emb := &recordingEmbedder{}
	in := &rag.Ingester{Index: idx, Embedder: emb, Splitter: paragraphs{}}
	sync(t, in, []rag.Document{{Source: "a.md", Title: "Rent", Text: "One.\n\n## Who\n\nTwo."}, {Source: "b.txt", Text: "Three."}}, rag.SyncOptions{})
	if diff := cmp.Diff([]string{"Rent\n\nOne.", "Rent\n\nWho\n\nTwo.", "Three."}, emb.texts); diff != "" {
		t.Errorf("embedded texts (-want +got):\n%s", diff)
	}
	// Each chunk is indexed by the terms of the same text, and keeps its section.
	for id, c := range idx.chunks {
		v := idx.vectors[id]
		if diff := cmp.Diff(rag.TermCounts(rag.IndexText(c)), v.Sparse); diff != "" {
			t.Errorf("chunk %q: sparse vector (-want +got):\n%s", c.Text, diff)
		}
		if v.Dense == nil {
			t.Errorf("chunk %q has no dense vector", c.Text)
		}
		if want := map[string]string{"Two.": "Who"}[c.Text]; c.Metadata[rag.MetaSection] != want {
			t.Errorf("chunk %q: section %q, want %q", c.Text, c.Metadata[rag.MetaSection], want)
		}
	}
}

func TestSyncWithoutEmbedderIndexesTerms(t *testing.T) {
	idx := newFakeIndex()
	idx.dim = 0
	in := &rag.Ingester{Index: idx, Splitter: paragraphs{}}
	rep := sync(t, in, corpus, rag.SyncOptions{})
	if rep.Chunks != 5 {
		t.Fatalf("Sync wrote %d chunks, want 5", rep.Chunks)
	}
	for id, v := range idx.vectors {
		if v.Dense != nil || v.Sparse.Len() == 0 {
			t.Errorf("chunk %s: vectors %+v, want term counts and no dense vector", id, v)
		}
	}
}

// reweighingIndex counts Reweigh calls.
type reweighingIndex struct {
	*fakeIndex
	calls int
}

func (r *reweighingIndex) Reweigh(context.Context) (int, error) {
	r.calls++
	return 7, nil
}

func TestSyncReweighsAfterChanges(t *testing.T) {
	idx := &reweighingIndex{fakeIndex: newFakeIndex()}
	in, _ := newIngester(idx)
	for i, tt := range []struct {
		docs  []rag.Document
		calls int
	}{
		{corpus, 1},     // added
		{corpus, 1},     // unchanged: nothing written, no reweigh
		{corpus[:2], 1}, // without Prune, nothing removed
		{corpus[:2], 2}, // pruned (below)
	} {
		rep := sync(t, in, tt.docs, rag.SyncOptions{Prune: i == 3})
		if idx.calls != tt.calls || (rep.Reweighed != 0) != (i == 0 || i == 3) {
			t.Errorf("sync %d: %d Reweigh calls, report %+v; want %d calls", i, idx.calls, rep, tt.calls)
		}
	}
}

// recordingEmbedder is a fakeEmbedder that keeps the texts it embedded.
type recordingEmbedder struct {
	fakeEmbedder
	texts []string
}

func (e *recordingEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	e.texts = append(e.texts, texts...)
	return e.fakeEmbedder.Embed(ctx, texts)
}
