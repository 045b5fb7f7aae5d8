package main

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/adapters/postgres/pgtest"
	"github.com/parleychat/parley/domain/rag"
)

const collection = "parley-terms-ko-en-1"

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// ingest runs `chatctl ingest args...` and returns its stdout.
func ingest(t *testing.T, getenv func(string) string, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), append([]string{"ingest"}, args...), getenv, nil, &stdout, &stderr); err != nil {
		t.Fatalf("chatctl ingest %v: %v\nstderr:\n%s", args, err, stderr.String())
	}
	return stdout.String()
}

// stored returns source -> sorted chunk texts, and the collection's
// generation.
func stored(t *testing.T, pool *pgxpool.Pool) (map[string][]string, int64) {
	t.Helper()
	rows, err := pool.Query(t.Context(), `SELECT source, text FROM rag_chunks WHERE collection = $1`, collection)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var s, text string
		if err := rows.Scan(&s, &text); err != nil {
			t.Fatal(err)
		}
		out[s] = append(out[s], text)
	}
	for _, v := range out {
		sort.Strings(v)
	}
	var gen int64
	if err := pool.QueryRow(t.Context(), `SELECT generation FROM rag_collections WHERE name = $1`, collection).Scan(&gen); err != nil {
		t.Fatal(err)
	}
	return out, gen
}

func summaryLine(out string) string {
	line, _, _ := strings.Cut(out, ";")
	return line
}

func TestIngest(t *testing.T) {
	dbURL := pgtest.NewDatabase(t)
	pool, err := pgxpool.New(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	getenv := env(map[string]string{"PARLEY_DATABASE_URL": dbURL})

	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "housing/rent.md"), "# 청년 월세 지원\n\n청년 월세 특별지원은 월 최대 20만 원을 12개월 동안 지원합니다.\n\n신청은 복지로 누리집에서 할 수 있습니다.\n")
	writeFile(t, filepath.Join(dir, "faq.txt"), "How do I apply for rent support?\n\nApply online at the welfare portal.\n")
	writeFile(t, filepath.Join(dir, "jobs/work.html"), "<html><head><title>Work</title><script>alert(1)</script></head><body><h1>Job seekers</h1><p>Job seekers get <b>training</b> vouchers.</p></body></html>")
	writeFile(t, filepath.Join(dir, "report.pdf"), "%PDF-1.7")
	writeFile(t, filepath.Join(dir, ".git/config.md"), "# hidden")

	out := ingest(t, getenv, dir)
	if got, want := summaryLine(out), "added 3, updated 0, removed 0, unchanged 0 documents"; got != want {
		t.Errorf("first ingest: %q, want %q\n%s", got, want, out)
	}
	if !strings.Contains(out, "report.pdf: PDF is not supported") {
		t.Errorf("first ingest does not report the skipped PDF:\n%s", out)
	}
	first, gen := stored(t, pool)
	if got := strings.Join(first["jobs/work.html"], " "); got != "Job seekers get training vouchers." {
		t.Errorf("HTML stored as %q: want its text without tags, script or title heading", got)
	}
	if len(first) != 3 {
		t.Errorf("stored sources %v, want 3", first)
	}

	// Unchanged: nothing written, not even a generation.
	out = ingest(t, getenv, dir)
	if got, want := summaryLine(out), "added 0, updated 0, removed 0, unchanged 3 documents"; got != want {
		t.Errorf("re-ingest: %q, want %q", got, want)
	}
	again, gen2 := stored(t, pool)
	if gen2 != gen || !cmp.Equal(first, again) {
		t.Errorf("re-ingesting unchanged documents moved the generation %d -> %d or changed rows", gen, gen2)
	}

	// Changed: its chunks are replaced.
	writeFile(t, filepath.Join(dir, "faq.txt"), "How do I apply for rent support?\n\nApply by post since May.\n")
	out = ingest(t, getenv, dir)
	if got, want := summaryLine(out), "added 0, updated 1, removed 0, unchanged 2 documents"; got != want || !strings.Contains(out, "~ faq.txt") {
		t.Errorf("after a change: %q, want %q\n%s", got, want, out)
	}
	changed, _ := stored(t, pool)
	if diff := cmp.Diff([]string{"How do I apply for rent support?\n\nApply by post since May."}, changed["faq.txt"]); diff != "" {
		t.Errorf("faq.txt chunks after the change (-want +got):\n%s", diff)
	}

	// Gone: kept without --prune, removed with it (flags after paths).
	if err := os.Remove(filepath.Join(dir, "jobs/work.html")); err != nil {
		t.Fatal(err)
	}
	out = ingest(t, getenv, dir)
	if got, want := summaryLine(out), "added 0, updated 0, removed 0, unchanged 2 documents"; got != want {
		t.Errorf("without --prune: %q, want %q", got, want)
	}
	out = ingest(t, getenv, dir, "--prune")
	if got, want := summaryLine(out), "added 0, updated 0, removed 1, unchanged 2 documents"; got != want || !strings.Contains(out, "- jobs/work.html") {
		t.Errorf("with --prune: %q, want %q\n%s", got, want, out)
	}
	if left, _ := stored(t, pool); left["jobs/work.html"] != nil {
		t.Errorf("pruned document still stored")
	}

	// What was ingested is what a search finds.
	idx, err := postgres.OpenRAGIndex(t.Context(), pool, postgres.RAGIndexConfig{Collection: collection})
	if err != nil {
		t.Fatal(err)
	}
	res, err := idx.Search(t.Context(), rag.Query{Sparse: []rag.SparseVector{rag.QueryTerms("청년 월세 지원 신청")}}, rag.SearchOptions{K: 1})
	if err != nil || len(res.Hits) != 1 || res.Hits[0].Chunk.Source != "housing/rent.md" || res.Hits[0].Chunk.Metadata["lang"] != "ko" {
		t.Errorf("search for 청년 월세 지원 신청 = %+v, %v; want a Korean chunk of housing/rent.md", res.Hits, err)
	}
}

// TestIngestCutsAtHeadingsInTokens: sections become chunks with their
// heading, and --max-tokens cuts a long one.
func TestIngestCutsAtHeadingsInTokens(t *testing.T) {
	dbURL := pgtest.NewDatabase(t)
	pool, err := pgxpool.New(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	dir := t.TempDir()
	long := strings.Repeat("Young people who rent a home on their own may receive monthly support. ", 20)
	writeFile(t, filepath.Join(dir, "rent.en.md"), "# Rent\n\nIntro.\n\n## Who can apply\n\nAged 19 to 34.\n\n## Details\n\n"+long+"\n")
	out := ingest(t, env(map[string]string{"PARLEY_DATABASE_URL": dbURL}), dir, "--max-tokens", "100")
	if !strings.Contains(out, "5 chunks written") {
		t.Errorf("ingest output %q: want 5 chunks (intro, one section, a long one cut in three)", out)
	}
	rows, err := pool.Query(t.Context(), `SELECT metadata->>'section', count(*) FROM rag_chunks GROUP BY 1 ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for rows.Next() {
		var sec *string
		var n int
		if err := rows.Scan(&sec, &n); err != nil {
			t.Fatal(err)
		}
		key := ""
		if sec != nil {
			key = *sec
		}
		got[key] = n
	}
	if diff := cmp.Diff(map[string]int{"": 1, "Who can apply": 1, "Details": 3}, got); diff != "" {
		t.Errorf("chunks by section (-want +got):\n%s", diff)
	}
}

func TestIngestPrefixScopesPrune(t *testing.T) {
	dbURL := pgtest.NewDatabase(t)
	getenv := env(map[string]string{"PARLEY_DATABASE_URL": dbURL})
	a, b := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(a, "x.md"), "# X\n\nalpha")
	writeFile(t, filepath.Join(b, "x.md"), "# X\n\nbeta")
	ingest(t, getenv, "--prefix", "a/", a)
	ingest(t, getenv, "--prefix", "b/", b)
	if err := os.Remove(filepath.Join(a, "x.md")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(a, "y.md"), "gamma")
	out := ingest(t, getenv, "--prefix", "a/", a, "--prune")
	if !strings.Contains(out, "+ a/y.md") || !strings.Contains(out, "- a/x.md") || strings.Contains(out, "b/x.md") {
		t.Errorf("prune under --prefix a/ touched the wrong documents:\n%s", out)
	}
}

func TestIngestBadInput(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.md"), "a")
	for _, tt := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, nil, "name at least one file"},
		{[]string{filepath.Join(dir, "missing")}, nil, "no such file"},
		{[]string{dir, "--max-tokens", "8"}, nil, "--max-tokens ≥ 16"},
		{[]string{dir, "--chunk-size", "800"}, nil, "use --max-tokens"},
		{[]string{dir, "--overlap", "100"}, nil, "drop --overlap"},
		{[]string{dir, "--bogus"}, nil, "flag provided but not defined"},
		{[]string{dir}, map[string]string{"PARLEY_EMBEDDER": "bert"}, "not none, ollama, openai or lexical"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(t.Context(), append([]string{"ingest"}, tt.args...), env(tt.env), nil, &stdout, &stderr)
		if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ingest %v: error %v (exit %d), want exit 2 mentioning %q", tt.args, err, exitCode(err), tt.want)
		}
	}
}
