package postgres_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
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
	if err := a.Upsert(t.Context(), []rag.Chunk{c}, [][]float32{v}); err != nil {
		t.Fatal(err)
	}
	b := openRAG(t, pool, cfg)
	hits, err := b.Search(t.Context(), v, rag.SearchOptions{K: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) != 1 || hits[0].Chunk.Text != c.Text || hits[0].Chunk.Metadata["lang"] != "en" {
		t.Fatalf("reopened index finds %+v, want %s", hits, c.ID)
	}
	if b.Generation() != a.Generation() {
		t.Errorf("reopened generation %d, writer's %d", b.Generation(), a.Generation())
	}

	_, err = postgres.OpenRAGIndex(t.Context(), pool, postgres.RAGIndexConfig{Collection: "docs", Dimension: 8})
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
	if err := writer.Upsert(t.Context(), []rag.Chunk{c}, [][]float32{v}); err != nil {
		t.Fatal(err)
	}
	find := func(x *postgres.RAGIndex) bool {
		t.Helper()
		hits, err := x.Search(t.Context(), v, rag.SearchOptions{K: 1})
		if err != nil {
			t.Fatal(err)
		}
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
	if err := manual.Upsert(t.Context(), []rag.Chunk{c2}, [][]float32{v2}); err != nil {
		t.Fatal(err)
	}
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
	if err := x.Upsert(t.Context(), []rag.Chunk{c}, [][]float32{v}); err != nil {
		t.Fatal(err)
	}
	pool.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	hits, err := x.Search(ctx, v, rag.SearchOptions{K: 1})
	if err != nil || len(hits) != 1 {
		t.Fatalf("Search with Postgres gone = %v, %v; want the chunk from memory", hits, err)
	}
}

func TestRAGIndexConfigValidate(t *testing.T) {
	for _, cfg := range []postgres.RAGIndexConfig{
		{Dimension: 4},
		{Collection: "bad name", Dimension: 4},
		{Collection: "ok"},
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
	if err := writer.Upsert(t.Context(), []rag.Chunk{c}, [][]float32{v}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for reader.Generation() != writer.Generation() {
		if time.Now().After(deadline) {
			t.Fatalf("Run did not reload within 10s: generation %d, writer's %d", reader.Generation(), writer.Generation())
		}
		time.Sleep(5 * time.Millisecond)
	}
	hits, err := reader.Search(t.Context(), v, rag.SearchOptions{K: 1})
	if err != nil || len(hits) != 1 || hits[0].Chunk.ID != c.ID {
		t.Errorf("after Run reloaded: Search = %v, %v; want the other process's chunk", hits, err)
	}
}
