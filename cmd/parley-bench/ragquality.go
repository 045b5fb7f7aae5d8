package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/adapters/document"
	"github.com/parleychat/parley/adapters/langchain"
	"github.com/parleychat/parley/adapters/lexical"
	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/adapters/tokens"
	"github.com/parleychat/parley/cmd/internal/ragenv"
	"github.com/parleychat/parley/domain/chat"
	"github.com/parleychat/parley/domain/rag"
	"github.com/parleychat/parley/domain/rag/ragtest"
)

// corpusDir is the sample corpus, relative to the repository root.
const corpusDir = "docs/corpus"

// qualitySets are the question sets scored, by name, in the order shown;
// PARLEY_BENCH_RAG_SETS narrows them (e.g. "labelled,dev" while tuning,
// so that the held-out test halves are scored only at the end).
var qualitySets = []struct{ name, file string }{
	{"labelled", ragtest.SetLabelled},
	{"dev", ragtest.SetParaphrasesDev},
	{"test", ragtest.SetParaphrasesTest},
	{"off-dev", ragtest.SetOffTopicDev},
	{"off-test", ragtest.SetOffTopicTest},
}

// method is one way of retrieving, ingested into its own collection.
type method struct {
	name     string
	splitter rag.Splitter
	embedder rag.Embedder // nil: none
	dim      int
	retrieve func(idx rag.Index) (chat.Retriever, error)
}

// benchQuality prints recall@4 and MRR of each method on each question
// set by language, and the chunk sizes of the two splitters by language.
// Methods: hashing as it was (800-character chunks, the 384-dimension
// hashing embedder, the four nearest chunks), BM25 as chatd's defaults
// run it, and, when PARLEY_EMBEDDER names a model, dense alone and hybrid
// (BM25 and dense fused), with the query rewrite too when PARLEY_LLM_*
// names a model.
func benchQuality(ctx context.Context, pool *pgxpool.Pool, getenv func(string) string, out io.Writer) error {
	listed, err := ragtest.LoadCorpus(os.DirFS(corpusDir))
	if err != nil {
		return fmt.Errorf("retrieval quality: %w (run from the repository root)", err)
	}
	sources := make([]string, len(listed))
	for i, d := range listed {
		sources[i] = d.Source
	}
	docs, err := document.LoadAll(corpusDir, sources)
	if err != nil {
		return fmt.Errorf("retrieval quality: %w", err)
	}
	sets, err := loadSets(listed, getenv("PARLEY_BENCH_RAG_SETS"))
	if err != nil {
		return err
	}
	counter, err := tokens.New("")
	if err != nil {
		return err
	}
	sections, err := document.NewSplitter(counter, document.SplitterConfig{})
	if err != nil {
		return err
	}
	chars, err := langchain.NewSplitter(langchain.SplitterConfig{})
	if err != nil {
		return err
	}
	hashing, err := lexical.New(lexical.Config{})
	if err != nil {
		return err
	}
	methods := []method{
		{name: "hashing (today's)", splitter: chars, embedder: hashing, dim: hashing.Dimension(),
			retrieve: func(idx rag.Index) (chat.Retriever, error) { return nearest{emb: hashing, idx: idx}, nil }},
		{name: "BM25 (default)", splitter: sections,
			retrieve: func(idx rag.Index) (chat.Retriever, error) {
				return rag.NewRetriever(rag.RetrieverDeps{Index: idx}, rag.RetrieverConfig{})
			}},
	}
	rc, err := ragenv.FromEnv(getenv)
	if err != nil {
		return err
	}
	var rw rag.Rewriter
	if p := getenv("PARLEY_LLM_PROVIDER"); p != "" {
		if rw, err = langchain.NewRewriter(langchain.Config{Provider: p, BaseURL: getenv("PARLEY_LLM_URL"), Model: getenv("PARLEY_LLM_MODEL"), APIKey: getenv("PARLEY_LLM_API_KEY")}, langchain.RewriterConfig{}); err != nil {
			return fmt.Errorf("query rewriter (PARLEY_LLM_*): %w", err)
		}
		methods = append(methods, method{name: "BM25 + rewrite", splitter: sections, retrieve: func(idx rag.Index) (chat.Retriever, error) {
			return rag.NewRetriever(rag.RetrieverDeps{Index: idx, Rewriter: rw}, rag.RetrieverConfig{})
		}})
	}
	if rc.Embedder == ragenv.EmbedderOllama || rc.Embedder == ragenv.EmbedderOpenAI {
		emb, err := rc.OpenEmbedder(ctx)
		if err != nil {
			return fmt.Errorf("embedder (PARLEY_EMBEDDER): %w", err)
		}
		methods = append(methods,
			method{name: "dense " + emb.Name(), splitter: sections, embedder: emb, dim: emb.Dimension(),
				retrieve: func(idx rag.Index) (chat.Retriever, error) { return nearest{emb: emb, idx: idx, diversify: true}, nil }},
			method{name: "hybrid", splitter: sections, embedder: emb, dim: emb.Dimension(),
				retrieve: func(idx rag.Index) (chat.Retriever, error) {
					return rag.NewRetriever(rag.RetrieverDeps{Index: idx, Embedder: emb}, rag.RetrieverConfig{})
				}})
		if rw != nil {
			methods = append(methods, method{name: "hybrid + rewrite", splitter: sections, embedder: emb, dim: emb.Dimension(),
				retrieve: func(idx rag.Index) (chat.Retriever, error) {
					return rag.NewRetriever(rag.RetrieverDeps{Index: idx, Embedder: emb, Rewriter: rw}, rag.RetrieverConfig{})
				}})
		}
	}

	fmt.Fprintf(out, "\n== RAG retrieval quality on docs/corpus (%d documents), as chatctl ingest reads them: recall@%d / MRR by question language\n", len(docs), ragtest.RecallK)
	fmt.Fprintln(out, "   (cross-: only documents in the other language answer; none-: off-topic, the share answered with no passage at all)")
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "   method\tset\tko\ten\tcross-ko\tcross-en\tsame-language\t")
	for i, m := range methods {
		idx, err := postgres.OpenRAGIndex(ctx, pool, postgres.RAGIndexConfig{Collection: fmt.Sprintf("quality-%d", i), Dimension: m.dim})
		if err != nil {
			return err
		}
		in := &rag.Ingester{Index: idx, Embedder: m.embedder, Splitter: m.splitter}
		if _, err := in.Sync(ctx, docs, rag.SyncOptions{}); err != nil {
			return fmt.Errorf("%s: ingest the corpus: %w", m.name, err)
		}
		r, err := m.retrieve(idx)
		if err != nil {
			return err
		}
		for _, s := range sets {
			e, err := ragtest.Evaluate(ctx, r, s.questions)
			if err != nil {
				return fmt.Errorf("%s, %s: %w", m.name, s.name, err)
			}
			cell := func(keep func(ragtest.Question) bool) string {
				sc := e.Score(keep)
				switch {
				case sc.Total == 0:
					return "-"
				case strings.HasPrefix(s.name, "off"):
					return fmt.Sprintf("%.2f (%d/%d)", sc.Recall(), sc.Correct, sc.Total)
				}
				return fmt.Sprintf("%.3f/%.3f", sc.Recall(), sc.MRR())
			}
			group := func(g string) func(ragtest.Question) bool {
				return func(q ragtest.Question) bool { return strings.TrimPrefix(ragtest.GroupOf(q), "none-") == g }
			}
			same := ragtest.SameLanguage
			if strings.HasPrefix(s.name, "off") {
				same = nil
			}
			fmt.Fprintf(tw, "   %s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", m.name, s.name, cell(group("ko")), cell(group("en")),
				cell(group("cross-ko")), cell(group("cross-en")), cell(same))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return chunkSizes(out, docs, counter, map[string]rag.Splitter{"sections in tokens (today)": sections, "800 characters (before)": chars})
}

type questionSet struct {
	name      string
	questions []ragtest.Question
}

// loadSets reads the question sets named in only (comma-separated; all if
// empty).
func loadSets(docs []ragtest.Document, only string) ([]questionSet, error) {
	var want []string
	if only != "" {
		want = strings.Split(only, ",")
	}
	var out []questionSet
	for _, s := range qualitySets {
		if want != nil && !slices.Contains(want, s.name) {
			continue
		}
		qs, err := ragtest.LoadQuestions(os.DirFS(corpusDir), s.file)
		if err != nil {
			return nil, fmt.Errorf("retrieval quality: %w", err)
		}
		if err := ragtest.CheckAnswers(docs, qs); err != nil {
			return nil, fmt.Errorf("retrieval quality: %s: %w", s.file, err)
		}
		out = append(out, questionSet{s.name, qs})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("PARLEY_BENCH_RAG_SETS=%q names none of labelled, dev, test, off-dev, off-test", only)
	}
	return out, nil
}

// nearest is retrieval by a dense embedder alone: the K chunks nearest the
// question, as the hashing embedder's retrieval was, or diversified as
// the Retriever does.
type nearest struct {
	emb       rag.Embedder
	idx       rag.Index
	diversify bool
}

func (n nearest) Retrieve(ctx context.Context, question string) (chat.Retrieval, error) {
	v, err := n.emb.Embed(ctx, []string{question})
	if err != nil {
		return chat.Retrieval{}, err
	}
	k := rag.DefaultK
	if n.diversify {
		k = rag.DefaultCandidates
	}
	res, err := n.idx.Search(ctx, rag.Query{Dense: v}, rag.SearchOptions{K: k})
	if err != nil {
		return chat.Retrieval{}, err
	}
	hits := res.Hits
	if n.diversify {
		hits = rag.Diversify(hits, rag.DefaultK)
	}
	var out chat.Retrieval
	for _, h := range hits {
		out.Passages = append(out.Passages, chat.Passage{Document: h.Chunk.Source, ChunkID: h.Chunk.ID, Score: h.Score, Text: h.Chunk.Text})
	}
	return out, nil
}

// chunkSizes prints, for each splitter, the chunks it cuts the corpus
// into by language: how many per document, and their size in tokens.
func chunkSizes(out io.Writer, docs []rag.Document, counter *tokens.Counter, splitters map[string]rag.Splitter) error {
	fmt.Fprintf(out, "\n   chunk sizes (%s tokens, indexed text without the title and heading path):\n", counter.Encoding())
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "   splitter\tlanguage\tdocuments\tchunks\tper document\tmin\tp10\tp50\tp90\tmax\t")
	names := make([]string, 0, len(splitters))
	for n := range splitters {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, name := range slices.Backward(names) {
		byLang := map[string][]int{}
		ndocs := map[string]int{}
		for _, d := range docs {
			secs, err := splitters[name].Split(d.Text)
			if err != nil {
				return err
			}
			lang := "en"
			if strings.HasSuffix(d.Source, ".ko.md") {
				lang = "ko"
			}
			ndocs[lang]++
			for _, s := range secs {
				byLang[lang] = append(byLang[lang], counter.Count(s.Text))
			}
		}
		for _, lang := range []string{"ko", "en"} {
			sizes := byLang[lang]
			slices.Sort(sizes)
			q := func(p int) int { return sizes[min(len(sizes)-1, p*len(sizes)/100)] }
			fmt.Fprintf(tw, "   %s\t%s\t%d\t%d\t%.1f\t%d\t%d\t%d\t%d\t%d\t\n", name, lang, ndocs[lang], len(sizes),
				float64(len(sizes))/float64(ndocs[lang]), sizes[0], q(10), q(50), q(90), sizes[len(sizes)-1])
		}
	}
	return tw.Flush()
}
