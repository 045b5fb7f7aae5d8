package postgres_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/adapters/postgres/pgtest"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/rag"
	"github.com/parleychat/parley/domain/rag/ragtest"
)

func openRAG(t *testing.T, pool *pgxpool.Pool, cfg postgres.RAGIndexConfig) *postgres.RAGIndex {
	t.Helper()
	x, err := postgres.OpenRAGIndex(t.Context(), pool, cfg)
	if err != nil {
		t.Fatalf("OpenRAGIndex(%s): %v", cfg.Collection, err)
	}
	return x
}

// TestRAGIndexContract runs the rag.Index contract, one collection per
// subtest in one database.
func TestRAGIndexContract(t *testing.T) {
	pool := pgtest.NewPool(t, 8)
	ragtest.RunIndexTests(t, func(t *testing.T, dim int) rag.Index {
		sum := sha256.Sum256([]byte(t.Name()))
		return openRAG(t, pool, postgres.RAGIndexConfig{Collection: "c-" + hex.EncodeToString(sum[:8]), Dimension: dim})
	})
}

func ragChunk(source string, i int) (rag.Chunk, []float32) {
	v := make([]float32, 4)
	v[i%4] = 1
	v[(i+1)%4] = 0.5
	return rag.NewChunk(source, "T", i, fmt.Sprintf("chunk %d of %s", i, source), map[string]string{"lang": "en"}), v
}

// upsertDense writes c with dense vector v and its term counts.
func upsertDense(t *testing.T, x rag.Index, c rag.Chunk, v []float32) {
	t.Helper()
	if err := x.Upsert(t.Context(), []rag.Chunk{c}, []rag.Vectors{{Dense: v, Sparse: rag.TermCounts(rag.IndexText(c))}}); err != nil {
		t.Fatal(err)
	}
}

// nearest returns the fused hits of a dense search for v.
func nearest(t *testing.T, x rag.Index, ctx context.Context, v []float32) []rag.Hit {
	t.Helper()
	res, err := x.Search(ctx, rag.Query{Dense: [][]float32{v}}, rag.SearchOptions{K: 1})
	if err != nil {
		t.Fatal(err)
	}
	return res.Hits
}

func generation(t *testing.T, pool *pgxpool.Pool, collection string) int64 {
	t.Helper()
	var g int64
	if err := pool.QueryRow(t.Context(), `SELECT generation FROM rag_collections WHERE name = $1`, collection).Scan(&g); err != nil {
		t.Fatal(err)
	}
	return g
}

func TestRAGIndexPersistsAndReopens(t *testing.T) {
	pool := pgtest.NewPool(t, 4)
	cfg := postgres.RAGIndexConfig{Collection: "docs", Dimension: 4}
	a := openRAG(t, pool, cfg)
	c, v := ragChunk("a.md", 1)
	upsertDense(t, a, c, v)
	b := openRAG(t, pool, cfg)
	hits := nearest(t, b, t.Context(), v)
	if len(hits) != 1 || hits[0].Chunk.Text != c.Text || hits[0].Chunk.Metadata["lang"] != "en" {
		t.Fatalf("reopened index finds %+v, want %s", hits, c.ID)
	}
	if b.Generation() != a.Generation() {
		t.Errorf("reopened generation %d, writer's %d", b.Generation(), a.Generation())
	}

	_, err := postgres.OpenRAGIndex(t.Context(), pool, postgres.RAGIndexConfig{Collection: "docs", Dimension: 8})
	if code := domain.ErrorCode(err); code != domain.EINVALID {
		t.Errorf("reopen with another dimension: %v (code %q), want %q", err, code, domain.EINVALID)
	}
}

func TestRAGIndexNoOpWritesKeepGeneration(t *testing.T) {
	pool := pgtest.NewPool(t, 4)
	x := openRAG(t, pool, postgres.RAGIndexConfig{Collection: "docs", Dimension: 4})
	before := generation(t, pool, "docs")
	if err := x.DeleteSource(t.Context(), "never.md"); err != nil {
		t.Fatal(err)
	}
	if err := x.Upsert(t.Context(), nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := x.ReplaceSource(t.Context(), "never.md", nil, nil); err != nil {
		t.Fatal(err)
	}
	if after := generation(t, pool, "docs"); after != before {
		t.Errorf("no-op writes moved the generation from %d to %d: other processes would reload for nothing", before, after)
	}
}

func TestRAGIndexSeesOtherProcessesWrites(t *testing.T) {
	pool := pgtest.NewPool(t, 8)
	writer := openRAG(t, pool, postgres.RAGIndexConfig{Collection: "docs", Dimension: 4})
	polling := openRAG(t, pool, postgres.RAGIndexConfig{Collection: "docs", Dimension: 4, RefreshInterval: time.Millisecond})
	manual := openRAG(t, pool, postgres.RAGIndexConfig{Collection: "docs", Dimension: 4, RefreshInterval: -1})

	c, v := ragChunk("new.md", 2)
	upsertDense(t, writer, c, v)
	find := func(x *postgres.RAGIndex) bool {
		t.Helper()
		hits := nearest(t, x, t.Context(), v)
		return len(hits) == 1 && hits[0].Chunk.ID == c.ID
	}
	time.Sleep(5 * time.Millisecond)
	if !find(polling) {
		t.Errorf("an index refreshing every 1ms does not see another process's write")
	}
	if find(manual) {
		t.Errorf("an index with refresh off sees another process's write before Reload")
	}
	// manual's own write shows it that the generation skipped one: its next
	// search reloads.
	c2, v2 := ragChunk("own.md", 3)
	upsertDense(t, manual, c2, v2)
	if !find(manual) {
		t.Errorf("after its own write found a gap in generations, the index still misses the other write")
	}
	if manual.Len() != 2 {
		t.Errorf("Len = %d, want 2", manual.Len())
	}
}

func TestRAGIndexSearchesMemoryWhenPostgresIsGone(t *testing.T) {
	pool := pgtest.NewPool(t, 4)
	x := openRAG(t, pool, postgres.RAGIndexConfig{Collection: "docs", Dimension: 4, RefreshInterval: time.Nanosecond})
	c, v := ragChunk("a.md", 0)
	upsertDense(t, x, c, v)
	pool.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if hits := nearest(t, x, ctx, v); len(hits) != 1 {
		t.Fatalf("Search with Postgres gone = %v; want the chunk from memory", hits)
	}
}

func TestRAGIndexConfigValidate(t *testing.T) {
	for _, cfg := range []postgres.RAGIndexConfig{
		{Dimension: 4},
		{Collection: "bad name", Dimension: 4},
		{Collection: "ok", Dimension: -1},
		{Collection: "ok", Dimension: 4, Rescore: -1},
	} {
		if err := cfg.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil", cfg)
		}
	}
}

func TestRAGIndexRunReloadsInTheBackground(t *testing.T) {
	pool := pgtest.NewPool(t, 8)
	writer := openRAG(t, pool, postgres.RAGIndexConfig{Collection: "docs", Dimension: 4})
	reader := openRAG(t, pool, postgres.RAGIndexConfig{Collection: "docs", Dimension: 4, RefreshInterval: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- reader.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	c, v := ragChunk("bg.md", 1)
	upsertDense(t, writer, c, v)
	deadline := time.Now().Add(10 * time.Second)
	for reader.Generation() != writer.Generation() {
		if time.Now().After(deadline) {
			t.Fatalf("Run did not reload within 10s: generation %d, writer's %d", reader.Generation(), writer.Generation())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if hits := nearest(t, reader, t.Context(), v); len(hits) != 1 || hits[0].Chunk.ID != c.ID {
		t.Errorf("after Run reloaded: Search = %v; want the other process's chunk", hits)
	}
}

// TestRAGIndexUpgradesACollectionWithoutTerms: a collection the code
// before sparse retrieval wrote (no encoding, chunks without terms) opens,
// its chunks stay searchable by their vectors, and the next ingest writes
// them again with their terms, after which re-ingesting writes nothing.
func TestRAGIndexUpgradesACollectionWithoutTerms(t *testing.T) {
	pool := pgtest.NewPool(t, 4)
	doc := rag.Document{Source: "housing/rent.md", Title: "Rent", Text: "Young people get rent support.\n\nApply online."}
	// As the old code stored it: one chunk per paragraph, a vector, no terms.
	if _, err := pool.Exec(t.Context(), `INSERT INTO rag_collections (name, dimension) VALUES ('old', 4)`); err != nil {
		t.Fatal(err)
	}
	for i, text := range []string{"Young people get rent support.", "Apply online."} {
		c := rag.NewChunk(doc.Source, doc.Title, i, text, nil)
		if _, err := pool.Exec(t.Context(), `INSERT INTO rag_chunks (collection, id, source, title, chunk_index, text, hash, vector, generation)
			VALUES ('old', $1, $2, $3, $4, $5, $6, $7, 0)`, c.ID, c.Source, c.Title, c.Index, c.Text, c.Hash, []byte{0, 0, 0x80, 0x3f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}); err != nil {
			t.Fatal(err)
		}
	}
	x := openRAG(t, pool, postgres.RAGIndexConfig{Collection: "old", Dimension: 4})
	if x.Len() != 2 {
		t.Fatalf("the old collection loaded %d chunks, want 2", x.Len())
	}
	if src, err := x.Sources(t.Context()); err != nil || len(src) != 0 {
		t.Fatalf("Sources = %v, %v; want the chunks without terms left out", src, err)
	}
	in := &rag.Ingester{Index: x, Embedder: constEmbedder{}, Splitter: paragraphs{}}
	for i, want := range []int{2, 0} {
		rep, err := in.Sync(t.Context(), []rag.Document{doc}, rag.SyncOptions{})
		if err != nil || rep.Chunks != want {
			t.Fatalf("ingest #%d: %+v, %v; want %d chunks written", i+1, rep, err, want)
		}
	}
	res, err := x.Search(t.Context(), rag.Query{Sparse: []rag.SparseVector{rag.QueryTerms("rent support")}}, rag.SearchOptions{})
	if err != nil || len(res.Hits) == 0 || res.Hits[0].Chunk.Text != "Young people get rent support." {
		t.Errorf("after the upgrade, sparse search = %+v, %v", res.Hits, err)
	}
	var enc string
	if err := pool.QueryRow(t.Context(), `SELECT sparse FROM rag_collections WHERE name = 'old'`).Scan(&enc); err != nil || enc != rag.SparseEncoding {
		t.Errorf("recorded encoding %q, %v; want %q", enc, err, rag.SparseEncoding)
	}
	if _, err := pool.Exec(t.Context(), `UPDATE rag_collections SET sparse = 'terms-other-0' WHERE name = 'old'`); err != nil {
		t.Fatal(err)
	}
	_, err = postgres.OpenRAGIndex(t.Context(), pool, postgres.RAGIndexConfig{Collection: "old", Dimension: 4})
	if code := domain.ErrorCode(err); code != domain.EINVALID || !strings.Contains(err.Error(), "terms-other-0") {
		t.Errorf("open a collection of another encoding: %v (code %q), want %q naming it", err, code, domain.EINVALID)
	}
}

// TestRAGIndexIDFFollowsOtherProcesses: a document another process adds,
// then prunes, changes this process's IDF once it reloads, and changes it
// back.
func TestRAGIndexIDFFollowsOtherProcesses(t *testing.T) {
	pool := pgtest.NewPool(t, 8)
	cfg := postgres.RAGIndexConfig{Collection: "sparse", RefreshInterval: -1}
	writer, reader := openRAG(t, pool, cfg), openRAG(t, pool, cfg)
	in := &rag.Ingester{Index: writer, Splitter: paragraphs{}}
	base := []rag.Document{{Source: "rent.md", Text: "rent"}, {Source: "loan.md", Text: "loan"}}
	more := rag.Document{Source: "more.md", Text: "rent\n\nrent deposit\n\nrent grant"}
	relevance := func() float64 {
		t.Helper()
		if err := reader.Reload(t.Context()); err != nil {
			t.Fatal(err)
		}
		res, err := reader.Search(t.Context(), rag.Query{Sparse: []rag.SparseVector{rag.QueryTerms("rent loan")}}, rag.SearchOptions{Sources: []string{"loan.md"}})
		if err != nil || len(res.Lists[0].Hits) != 1 {
			t.Fatalf("search: %+v, %v", res, err)
		}
		return res.Lists[0].Hits[0].Score
	}
	if _, err := in.Sync(t.Context(), base, rag.SyncOptions{}); err != nil {
		t.Fatal(err)
	}
	before := relevance()
	if _, err := in.Sync(t.Context(), append(base, more), rag.SyncOptions{}); err != nil {
		t.Fatal(err)
	}
	// rent is now in 4 of 5 chunks: it says less, so loan.md's share of
	// "rent loan" grows.
	added := relevance()
	if _, err := in.Sync(t.Context(), base, rag.SyncOptions{Prune: true}); err != nil {
		t.Fatal(err)
	}
	pruned := relevance()
	if added <= before+0.05 || math.Abs(pruned-before) > 1e-6 {
		t.Errorf("loan.md's relevance for \"rent loan\": %v, after adding rent chunks %v, after pruning them %v; want it to rise, then return", before, added, pruned)
	}
}

// constEmbedder gives every text the same 4-dimensional vector.
type constEmbedder struct{}

func (constEmbedder) Name() string   { return "const-4" }
func (constEmbedder) Dimension() int { return 4 }
func (constEmbedder) Embed(_ context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	for i := range out {
		out[i] = []float32{1, 0, 0, 0}
	}
	return out, nil
}

// paragraphs splits on blank lines, without headings.
type paragraphs struct{}

func (paragraphs) Split(text string) ([]rag.Section, error) {
	var out []rag.Section
	for _, p := range strings.Split(text, "\n\n") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, rag.Section{Text: p})
		}
	}
	return out, nil
}
