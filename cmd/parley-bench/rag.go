package main

import (
	"context"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/adapters/document"
	"github.com/parleychat/parley/adapters/langchain"
	"github.com/parleychat/parley/adapters/lexical"
	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/adapters/vecindex"
	"github.com/parleychat/parley/domain/rag"
	"github.com/parleychat/parley/domain/rag/ragtest"
)

// RAG benchmark sizes.
const (
	ragChunks       = 100_000
	ragDim          = lexical.DefaultDimension
	ragQueries      = 300
	ragK            = 4
	ragChunksPerDoc = 20
	ragWriteBatch   = 1000
	ragIngestDocs   = 500 // documents in the end-to-end Sync measurement
)

// benchRAG measures the embedded retrieval index (Postgres-backed, searched
// in memory over int8 vectors with float32 rescoring) on 100,000 chunks of
// 384 dimensions, beside a naive float32 brute-force loop over the same
// vectors in the same run: search latency, recall@4 against that exact
// search, and ingestion throughput.
//
// Two data sets: generated bilingual (Korean/English) topical text embedded
// with the built-in lexical embedder, and clustered Gaussian vectors (1,000
// centres; within a cluster cosine ≈ 0.6), the shape model embeddings of
// topical text have.
func benchRAG(ctx context.Context, cfg config, out io.Writer) error {
	pool, closePool, err := scratchPool(ctx, cfg.adminURL, 4)
	if err != nil {
		return err
	}
	defer closePool()
	emb, err := lexical.New(lexical.Config{Dimension: ragDim})
	if err != nil {
		return err
	}
	probe, err := vecindex.New(vecindex.Config{Dimension: ragDim})
	if err != nil {
		return err
	}
	scan := "int8 scan (AVX2) + float32 rescoring of max(4K,16) candidates"
	if !probe.Quantised() {
		scan = "float32 scan (no AVX2 here)"
	}
	if err := benchLabelledRecall(ctx, pool, emb, out); err != nil {
		return err
	}
	fmt.Fprintf(out, "\n== RAG embedded index: %d chunks × %d dimensions, K=%d; %s\n", ragChunks, ragDim, ragK, scan)
	fmt.Fprintf(out, "   %d queries × %d rounds; each query timed on the index, then on an exact float32 loop over the same vectors (the recall reference)\n\n", ragQueries, cfg.rounds)

	gen := newTextGen(1)
	t0 := time.Now()
	texts := make([]string, ragChunks)
	topics := make([]int, ragChunks)
	for i := range texts {
		topics[i] = i / ragChunksPerDoc % gen.topics()
		texts[i] = gen.chunk(topics[i])
	}
	genTook := time.Since(t0)
	t0 = time.Now()
	vectors, err := emb.Embed(ctx, texts)
	if err != nil {
		return err
	}
	embedRate := float64(ragChunks) / time.Since(t0).Seconds()
	queryTexts := make([]string, ragQueries)
	for i := range queryTexts {
		queryTexts[i] = gen.query(i * 7 % gen.topics())
	}
	queries, err := emb.Embed(ctx, queryTexts)
	if err != nil {
		return err
	}
	chunks := make([]rag.Chunk, ragChunks)
	for i, t := range texts {
		chunks[i] = rag.NewChunk(fmt.Sprintf("topic-%03d/doc-%05d.md", topics[i], i/ragChunksPerDoc), "", i%ragChunksPerDoc, t, nil)
	}

	clustered := ragtest.Clustered(2, ragChunks+ragQueries, ragDim, 1000, 0.8)

	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "data set\tindex p50\tindex p90\tindex p99\tfloat32 loop p50\tfloat32 loop p99\tspeed-up p50\trecall@4\t")
	var writeRate float64
	var reload time.Duration
	for _, set := range []struct {
		name    string
		vectors [][]float32
		queries [][]float32
	}{
		{"lexical text", vectors, queries},
		{"clustered", clustered[:ragChunks], clustered[ragChunks:]},
	} {
		x, err := postgres.OpenRAGIndex(ctx, pool, postgres.RAGIndexConfig{Collection: "bench-" + strings.ReplaceAll(set.name, " ", "-"), Dimension: ragDim})
		if err != nil {
			return err
		}
		t0 := time.Now()
		for i := 0; i < ragChunks; i += ragWriteBatch {
			if err := x.Upsert(ctx, chunks[i:i+ragWriteBatch], set.vectors[i:i+ragWriteBatch]); err != nil {
				return err
			}
		}
		if writeRate == 0 {
			writeRate = float64(ragChunks) / time.Since(t0).Seconds()
			t0 = time.Now()
			if err := x.Reload(ctx); err != nil {
				return err
			}
			reload = time.Since(t0)
		}
		runtime.GC() // start the timed part without the set-up's garbage
		r, err := measureSearch(ctx, x, set.vectors, set.queries, cfg.rounds)
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%.1f×\t%.4f\t\n", set.name, pct(r.index, 50), pct(r.index, 90), pct(r.index, 99), pct(r.naive, 50), pct(r.naive, 99),
			float64(quantile(r.naive, 50))/float64(quantile(r.index, 50)), r.recall)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	syncRate, resyncRate, syncChunks, err := measureIngest(ctx, pool, emb, gen)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\n   lexical text: %d generated chunks of %d-%d words over %d topics (in %s), ~%d runes each\n",
		ragChunks, textMinWords, textMaxWords, gen.topics(), genTook.Round(time.Millisecond), avgRunes(texts))
	fmt.Fprintf(out, "   ingestion: lexical embedding %.0f chunks/s; index writes (Postgres + memory, batches of %d) %.0f chunks/s;\n", embedRate, ragWriteBatch, writeRate)
	fmt.Fprintf(out, "              end-to-end Sync (split + embed + write, %d documents, %d chunks) %.0f chunks/s; re-Sync unchanged %.0f documents/s\n",
		ragIngestDocs, syncChunks, syncRate, resyncRate)
	fmt.Fprintf(out, "   reload of %d chunks from Postgres into memory (another process's write): %s\n", ragChunks, reload.Round(time.Millisecond))
	return nil
}

type searchResult struct {
	index, naive []time.Duration // sorted
	recall       float64
}

// measureSearch times x.Search and a naive exact loop on each query,
// interleaved, for rounds rounds, and computes recall@K of x against it.
func measureSearch(ctx context.Context, x rag.Index, vectors, queries [][]float32, rounds int) (searchResult, error) {
	flat := make([]float32, 0, len(vectors)*ragDim)
	for _, v := range vectors {
		flat = append(flat, rag.Normalize(v)...)
	}
	var r searchResult
	found := 0
	for round := range rounds {
		for _, q := range queries {
			t0 := time.Now()
			hits, err := x.Search(ctx, q, rag.SearchOptions{K: ragK, MinScore: -1})
			if err != nil {
				return r, err
			}
			r.index = append(r.index, time.Since(t0))
			t0 = time.Now()
			exact := naiveTopK(flat, rag.Normalize(q), ragK)
			r.naive = append(r.naive, time.Since(t0))
			if round == 0 {
				for _, h := range hits {
					idx := h.Chunk.Index + ragChunksPerDoc*docNumber(h.Chunk.Source)
					if slices.Contains(exact, idx) {
						found++
					}
				}
			}
		}
	}
	slices.Sort(r.index)
	slices.Sort(r.naive)
	r.recall = float64(found) / float64(len(queries)*ragK)
	return r, nil
}

// docNumber parses the doc-NNNNN part of a benchmark source.
func docNumber(source string) int {
	var topic, doc int
	fmt.Sscanf(source, "topic-%d/doc-%d.md", &topic, &doc)
	return doc
}

// naiveTopK is the baseline: a float32 dot product with every vector, in
// a plain loop with four accumulators (a single one would be four times
// slower, bound by the latency of one addition chain), and a sorted list of
// the k best. It is exact, and what a brute-force search costs in Go.
func naiveTopK(flat, q []float32, k int) []int {
	type hit struct {
		i int
		s float32
	}
	best := make([]hit, 0, k+1)
	for i := 0; i*len(q) < len(flat); i++ {
		v := flat[i*len(q) : (i+1)*len(q)]
		var s0, s1, s2, s3 float32
		for j := 0; j+3 < len(q); j += 4 {
			s0 += q[j] * v[j]
			s1 += q[j+1] * v[j+1]
			s2 += q[j+2] * v[j+2]
			s3 += q[j+3] * v[j+3]
		}
		s := s0 + s1 + s2 + s3
		if len(best) == k && s <= best[k-1].s {
			continue
		}
		at := len(best)
		for at > 0 && best[at-1].s < s {
			at--
		}
		best = slices.Insert(best, at, hit{i, s})
		if len(best) > k {
			best = best[:k]
		}
	}
	out := make([]int, len(best))
	for i, h := range best {
		out[i] = h.i
	}
	return out
}

// measureIngest runs the Ingester end to end on generated documents into
// a fresh collection, then again with nothing changed.
func measureIngest(ctx context.Context, pool *pgxpool.Pool, emb *lexical.Embedder, gen *textGen) (rate, resyncRate float64, chunks int, err error) {
	x, err := postgres.OpenRAGIndex(ctx, pool, postgres.RAGIndexConfig{Collection: "bench-ingest", Dimension: emb.Dimension()})
	if err != nil {
		return 0, 0, 0, err
	}
	splitter, err := langchain.NewSplitter(langchain.SplitterConfig{})
	if err != nil {
		return 0, 0, 0, err
	}
	docs := make([]rag.Document, ragIngestDocs)
	for i := range docs {
		var b strings.Builder
		for range ragChunksPerDoc {
			b.WriteString(gen.chunk(i % gen.topics()))
			b.WriteString("\n\n")
		}
		docs[i] = rag.Document{Source: fmt.Sprintf("ingest/doc-%04d.md", i), Title: fmt.Sprint(i), Text: b.String()}
	}
	in := &rag.Ingester{Index: x, Embedder: emb, Splitter: splitter}
	t0 := time.Now()
	rep, err := in.Sync(ctx, docs, rag.SyncOptions{})
	if err != nil {
		return 0, 0, 0, err
	}
	rate = float64(rep.Chunks) / time.Since(t0).Seconds()
	t0 = time.Now()
	again, err := in.Sync(ctx, docs, rag.SyncOptions{})
	if err != nil {
		return 0, 0, 0, err
	}
	if again.Chunks != 0 || len(again.Unchanged) != len(docs) {
		return 0, 0, 0, fmt.Errorf("re-Sync of unchanged documents wrote %d chunks", again.Chunks)
	}
	return rate, float64(len(docs)) / time.Since(t0).Seconds(), rep.Chunks, nil
}

func avgRunes(texts []string) int {
	n := 0
	for _, t := range texts {
		n += len([]rune(t))
	}
	return n / len(texts)
}

// Generated chunk lengths, in words.
const (
	textMinWords = 60
	textMaxWords = 100
)

// textGen makes topical bilingual text: each topic draws most words from
// its own Zipf-ranked vocabulary and the rest from a shared one, with
// Korean words (Hangul syllables, sometimes with a particle) and English
// ones mixed, and sentence ends every 8-16 words.
type textGen struct {
	rng      *rand.Rand
	general  []string
	topical  [][]string
	zGeneral *rand.Zipf
	zTopical *rand.Zipf
}

func newTextGen(seed int64) *textGen {
	rng := rand.New(rand.NewSource(seed))
	g := &textGen{rng: rng}
	g.general = make([]string, 3000)
	for i := range g.general {
		g.general[i] = g.word()
	}
	g.topical = make([][]string, 300)
	for i := range g.topical {
		g.topical[i] = make([]string, 120)
		for j := range g.topical[i] {
			g.topical[i][j] = g.word()
		}
	}
	g.zGeneral = rand.NewZipf(rng, 1.1, 2, uint64(len(g.general)-1))
	g.zTopical = rand.NewZipf(rng, 1.05, 3, 119)
	return g
}

func (g *textGen) topics() int { return len(g.topical) }

var particles = []string{"", "", "은", "는", "이", "가", "을", "를", "에", "의", "으로"}

// word returns a Korean word of 2-3 syllables or an English-like one.
func (g *textGen) word() string {
	if g.rng.Intn(2) == 0 {
		var b strings.Builder
		for range 2 + g.rng.Intn(2) {
			// Common initials, medials and finals, as real text has.
			syl := 0xAC00 + (g.rng.Intn(14)*21+g.rng.Intn(21))*28 + []int{0, 0, 0, 4, 8, 16, 21}[g.rng.Intn(7)]
			b.WriteRune(rune(syl))
		}
		return b.String()
	}
	const cons, vows = "bcdfghklmnprstvw", "aeiou"
	var b strings.Builder
	for range 2 + g.rng.Intn(3) {
		b.WriteByte(cons[g.rng.Intn(len(cons))])
		b.WriteByte(vows[g.rng.Intn(len(vows))])
	}
	return b.String()
}

func (g *textGen) pick(topic int) string {
	if g.rng.Float64() < 0.6 {
		return g.topical[topic][g.zTopical.Uint64()]
	}
	return g.general[g.zGeneral.Uint64()]
}

func (g *textGen) chunk(topic int) string {
	var b strings.Builder
	n := textMinWords + g.rng.Intn(textMaxWords-textMinWords+1)
	sentence := 0
	for i := range n {
		w := g.pick(topic)
		if w[0] >= 0x80 {
			w += particles[g.rng.Intn(len(particles))]
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(w)
		sentence++
		if sentence >= 8 && g.rng.Intn(8) == 0 || i == n-1 {
			if w[0] >= 0x80 {
				b.WriteString("다.")
			} else {
				b.WriteString(".")
			}
			sentence = 0
		}
	}
	return b.String()
}

func (g *textGen) query(topic int) string {
	words := make([]string, 4+g.rng.Intn(5))
	for i := range words {
		words[i] = g.pick(topic)
	}
	return strings.Join(words, " ")
}

// benchLabelledRecall prints recall@4 of the default pairing (lexical
// embedder, embedded index) on the labelled questions of docs/corpus, as
// adapters/postgres's TestRecallLexicalEmbeddedIndex checks it.
func benchLabelledRecall(ctx context.Context, pool *pgxpool.Pool, emb rag.Embedder, out io.Writer) error {
	const dir = "docs/corpus"
	corpus := os.DirFS(dir)
	listed, err := ragtest.LoadCorpus(corpus)
	if err != nil {
		return fmt.Errorf("labelled recall: %w (run from the repository root)", err)
	}
	qs, err := ragtest.LoadQuestions(corpus, "questions.jsonl")
	if err != nil {
		return fmt.Errorf("labelled recall: %w", err)
	}
	// As chatctl ingest feeds the index: each file read by document.Load,
	// split by the langchain splitter at its defaults, through rag.Ingester.
	docs := make([]rag.Document, len(listed))
	for i, d := range listed {
		if docs[i], err = document.Load(filepath.Join(dir, filepath.FromSlash(d.Source)), d.Source); err != nil {
			return fmt.Errorf("labelled recall: %w", err)
		}
	}
	splitter, err := langchain.NewSplitter(langchain.SplitterConfig{})
	if err != nil {
		return err
	}
	idx, err := postgres.OpenRAGIndex(ctx, pool, postgres.RAGIndexConfig{Collection: "labelled-recall", Dimension: emb.Dimension()})
	if err != nil {
		return err
	}
	in := &rag.Ingester{Index: idx, Embedder: emb, Splitter: splitter}
	rep, err := in.Sync(ctx, docs, rag.SyncOptions{})
	if err != nil {
		return fmt.Errorf("labelled recall: ingest the corpus: %w", err)
	}
	res, err := ragtest.Recall(ctx, emb, idx, qs, ragtest.RecallK)
	if err != nil {
		return fmt.Errorf("labelled recall: %w", err)
	}
	fmt.Fprintf(out, "\n== RAG retrieval quality: recall@%d = %.3f (%d of %d labelled questions found their document; %d documents in %d chunks as chatctl ingest splits them; embedder %s, embedded index)\n",
		res.K, float64(res.Found)/float64(res.Total), res.Found, res.Total, len(docs), rep.Chunks, emb.Name())
	return nil
}
