package main

import (
	"context"
	"fmt"
	"io"
	"math/rand"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/adapters/document"
	"github.com/parleychat/parley/adapters/lexical"
	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/adapters/tokens"
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

// benchRAG measures retrieval: its quality on the sample corpus
// (benchQuality), then the embedded retrieval index (Postgres-backed,
// searched in memory) on 100,000 chunks, beside a naive float32
// brute-force loop over the same chunks' 384-dimension vectors in the same
// run: BM25 search latency (the default), dense search latency and recall
// against exact search (int8 scan, float32 rescoring), hybrid latency, and
// ingestion throughput.
//
// Two data sets: generated bilingual (Korean/English) topical text, its
// terms for BM25 and its hashing-embedder vectors for the dense search, and
// clustered Gaussian vectors (1,000 centres; within a cluster cosine ≈
// 0.6), the shape model embeddings of topical text have.
func benchRAG(ctx context.Context, cfg config, out io.Writer) error {
	pool, closePool, err := scratchPool(ctx, cfg.adminURL, 4)
	if err != nil {
		return err
	}
	defer closePool()
	if err := benchQuality(ctx, pool, cfg.getenv, out); err != nil {
		return err
	}
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
	fmt.Fprintf(out, "\n== RAG embedded index: %d chunks, K=%d; dense: %d dimensions, %s\n", ragChunks, ragK, ragDim, scan)
	fmt.Fprintf(out, "   %d queries × %d rounds; each query timed on the index, then on an exact float32 loop over the same chunks' vectors (the baseline, and the dense recall reference)\n\n", ragQueries, cfg.rounds)

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
	t0 = time.Now()
	terms := make([]rag.SparseVector, ragChunks)
	for i, t := range texts {
		terms[i] = rag.TermCounts(t)
	}
	termRate := float64(ragChunks) / time.Since(t0).Seconds()
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
	fmt.Fprintln(tw, "search\tindex p50\tindex p90\tindex p99\tfloat32 loop p50\tfloat32 loop p99\tspeed-up p50\tdense recall@4\t")
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
			vs := make([]rag.Vectors, ragWriteBatch)
			for j := range vs {
				vs[j] = rag.Vectors{Dense: set.vectors[i+j], Sparse: terms[i+j]}
			}
			if err := x.Upsert(ctx, chunks[i:i+ragWriteBatch], vs); err != nil {
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
		kinds := []string{"dense"}
		if set.name == "lexical text" {
			kinds = []string{"BM25", "dense", "hybrid"}
		}
		for _, kind := range kinds {
			runtime.GC() // start the timed part without the set-up's garbage
			r, err := measureSearch(ctx, x, kind, set.vectors, set.queries, queryTexts, cfg.rounds)
			if err != nil {
				return err
			}
			recall := "-"
			if kind == "dense" {
				recall = fmt.Sprintf("%.4f", r.recall)
			}
			fmt.Fprintf(tw, "%s, %s\t%s\t%s\t%s\t%s\t%s\t%.1f×\t%s\t\n", kind, set.name, pct(r.index, 50), pct(r.index, 90), pct(r.index, 99), pct(r.naive, 50), pct(r.naive, 99),
				float64(quantile(r.naive, 50))/float64(quantile(r.index, 50)), recall)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	heap, err := measureHeap(ctx, pool, "bench-lexical-text")
	if err != nil {
		return err
	}
	syncRate, resyncRate, syncChunks, err := measureIngest(ctx, pool, gen)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\n   lexical text: %d generated chunks of %d-%d words over %d topics (in %s), ~%d runes and ~%d distinct terms each\n",
		ragChunks, textMinWords, textMaxWords, gen.topics(), genTook.Round(time.Millisecond), avgRunes(texts), avgTerms(terms))
	fmt.Fprintf(out, "   BM25 queries: %d-%d words of a topic; hybrid: BM25 and dense lists of %d, fused by RRF\n", 4, 8, ragK)
	fmt.Fprintf(out, "   ingestion: term counting %.0f chunks/s; hashing embedding %.0f chunks/s; index writes (Postgres + memory, batches of %d) %.0f chunks/s;\n",
		termRate, embedRate, ragWriteBatch, writeRate)
	fmt.Fprintf(out, "              end-to-end Sync as chatctl ingest runs it (split in tokens + terms + write, %d documents, %d chunks) %.0f chunks/s; re-Sync unchanged %.0f documents/s\n",
		ragIngestDocs, syncChunks, syncRate, resyncRate)
	fmt.Fprintf(out, "   reload of %d chunks from Postgres into memory (another process's write): %s; the copy in memory takes %d MB (texts, postings and %d-dimension vectors)\n",
		ragChunks, reload.Round(time.Millisecond), heap>>20, ragDim)
	return nil
}

// measureHeap returns how much heap one more process's copy of collection
// takes: the live heap after opening it, less the live heap before.
func measureHeap(ctx context.Context, pool *pgxpool.Pool, collection string) (uint64, error) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	x, err := postgres.OpenRAGIndex(ctx, pool, postgres.RAGIndexConfig{Collection: collection, Dimension: ragDim})
	if err != nil {
		return 0, err
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(x)
	if after.HeapAlloc < before.HeapAlloc {
		return 0, nil
	}
	return after.HeapAlloc - before.HeapAlloc, nil
}

type searchResult struct {
	index, naive []time.Duration // sorted
	recall       float64
}

// measureSearch times x.Search of kind (BM25: the query's terms; dense:
// its vector; hybrid: both, fused) and a naive exact float32 loop on each
// query, interleaved, for rounds rounds, and computes recall@K of dense
// search against the loop.
func measureSearch(ctx context.Context, x rag.Index, kind string, vectors, queries [][]float32, queryTexts []string, rounds int) (searchResult, error) {
	flat := make([]float32, 0, len(vectors)*ragDim)
	for _, v := range vectors {
		flat = append(flat, rag.Normalize(v)...)
	}
	var r searchResult
	found := 0
	for round := range rounds {
		for i, q := range queries {
			var query rag.Query
			if kind != "dense" {
				query.Sparse = []rag.SparseVector{rag.QueryTerms(queryTexts[i])}
			}
			if kind != "BM25" {
				query.Dense = [][]float32{q}
			}
			t0 := time.Now()
			res, err := x.Search(ctx, query, rag.SearchOptions{K: ragK, MinSimilarity: -1})
			if err != nil {
				return r, err
			}
			r.index = append(r.index, time.Since(t0))
			t0 = time.Now()
			exact := naiveTopK(flat, rag.Normalize(q), ragK)
			r.naive = append(r.naive, time.Since(t0))
			if round == 0 && kind == "dense" {
				for _, h := range res.Hits {
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

// measureIngest runs the Ingester end to end as chatctl ingest does by
// default (sections sized in tokens, term counts, no embedder) on
// generated documents into a fresh collection, then again with nothing
// changed.
func measureIngest(ctx context.Context, pool *pgxpool.Pool, gen *textGen) (rate, resyncRate float64, chunks int, err error) {
	x, err := postgres.OpenRAGIndex(ctx, pool, postgres.RAGIndexConfig{Collection: "bench-ingest"})
	if err != nil {
		return 0, 0, 0, err
	}
	counter, err := tokens.New("")
	if err != nil {
		return 0, 0, 0, err
	}
	splitter, err := document.NewSplitter(counter, document.SplitterConfig{})
	if err != nil {
		return 0, 0, 0, err
	}
	docs := make([]rag.Document, ragIngestDocs)
	for i := range docs {
		var b strings.Builder
		for j := range ragChunksPerDoc {
			fmt.Fprintf(&b, "## Section %d\n\n%s\n\n", j, gen.chunk(i%gen.topics()))
		}
		docs[i] = rag.Document{Source: fmt.Sprintf("ingest/doc-%04d.md", i), Title: fmt.Sprint(i), Text: b.String()}
	}
	in := &rag.Ingester{Index: x, Splitter: splitter}
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

func avgTerms(vs []rag.SparseVector) int {
	n := 0
	for _, v := range vs {
		n += v.Len()
	}
	return n / len(vs)
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
