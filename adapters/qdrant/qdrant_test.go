package qdrant

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/rag"
	"github.com/parleychat/parley/domain/rag/ragtest"
)

// TestContractAgainstServer runs the rag.Index contract against the real
// Qdrant at PARLEY_QDRANT_URL (its gRPC port), in throw-away collections.
func TestContractAgainstServer(t *testing.T) {
	url := os.Getenv("PARLEY_QDRANT_URL")
	if url == "" {
		t.Skip("SKIP: no Qdrant server; set PARLEY_QDRANT_URL (e.g. http://localhost:6334) to run the contract against one")
	}
	apiKey := os.Getenv("PARLEY_QDRANT_API_KEY")
	ragtest.RunIndexTests(t, func(t *testing.T, dim int) rag.Index {
		return openTemp(t, url, apiKey, dim, 0)
	})
}

// TestContractAgainstFake runs the contract against the in-process fake,
// which checks the requests the adapter builds (filters, thresholds,
// paging, payloads) everywhere.
func TestContractAgainstFake(t *testing.T) {
	_, url := startFake(t)
	ragtest.RunIndexTests(t, func(t *testing.T, dim int) rag.Index {
		return openTemp(t, url, "", dim, 7) // small batches: several requests per upsert
	})
}

func openTemp(t *testing.T, url, apiKey string, dim, batch int) *Index {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "parley_test_" + hex.EncodeToString(b[:])
	x, err := Open(t.Context(), Config{URL: url, APIKey: apiKey, Collection: name, Dimension: dim, BatchSize: batch})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := x.client.DeleteCollection(context.Background(), name); err != nil {
			t.Logf("delete collection %s: %v", name, err)
		}
		x.Close()
	})
	return x
}

func TestOpenChecksTheCollection(t *testing.T) {
	f, url := startFake(t)
	x, err := Open(t.Context(), Config{URL: url, Collection: "docs", Dimension: 8})
	if err != nil {
		t.Fatal(err)
	}
	x.Close()
	if got := f.collections["docs"].params; got.GetSize() != 8 || got.GetDistance().String() != "Cosine" {
		t.Errorf("created collection params %v, want size 8, Cosine", got)
	}
	// Reopening with the same settings is fine; another dimension is not.
	if x, err = Open(t.Context(), Config{URL: url, Collection: "docs", Dimension: 8}); err != nil {
		t.Errorf("reopen: %v", err)
	} else {
		x.Close()
	}
	_, err = Open(t.Context(), Config{URL: url, Collection: "docs", Dimension: 16})
	if code := domain.ErrorCode(err); code != domain.EINVALID || !strings.Contains(err.Error(), "8-dimensional") {
		t.Errorf("open with another dimension: %v (code %q), want %q naming the stored dimension", err, code, domain.EINVALID)
	}
}

func TestUpsertBatches(t *testing.T) {
	f, url := startFake(t)
	x := openTemp(t, url, "", 4, 3)
	var chunks []rag.Chunk
	var vectors [][]float32
	for i := range 10 {
		chunks = append(chunks, rag.NewChunk("b.md", "", i, fmt.Sprint(i), nil))
		vectors = append(vectors, []float32{1, float32(i), 0, 0})
	}
	f.requests = 0
	if err := x.Upsert(t.Context(), chunks, vectors); err != nil {
		t.Fatal(err)
	}
	if f.requests != 4 {
		t.Errorf("10 points in batches of 3 took %d requests, want 4", f.requests)
	}
	src, err := x.Sources(t.Context())
	if err != nil || len(src["b.md"]) != 10 {
		t.Errorf("Sources = %v, %v; want 10 IDs for b.md", src, err)
	}
}

func TestUnreachableServerIsUnavailable(t *testing.T) {
	f, url := startFake(t)
	x := openTemp(t, url, "", 4, 0)
	f.stop()
	_, err := x.Search(t.Context(), []float32{1, 0, 0, 0}, rag.SearchOptions{})
	if code := domain.ErrorCode(err); code != domain.EUNAVAILABLE || !strings.Contains(err.Error(), "qdrant parley_test_") {
		t.Errorf("Search with the server gone: %v (code %q), want %q naming the collection", err, code, domain.EUNAVAILABLE)
	}
	_, err = Open(t.Context(), Config{URL: "http://127.0.0.1:1", Collection: "c", Dimension: 4})
	if code := domain.ErrorCode(err); code != domain.EUNAVAILABLE {
		t.Errorf("Open on a closed port: %v (code %q), want %q", err, code, domain.EUNAVAILABLE)
	}
}

func TestConfig(t *testing.T) {
	for _, tt := range []struct {
		cfg  Config
		want string // part of the error, "" for none
	}{
		{Config{URL: "http://localhost", Collection: "c", Dimension: 4}, ""},
		{Config{URL: "https://q.example:443", Collection: "c", Dimension: 4, APIKey: "k"}, ""},
		{Config{URL: "localhost:6334", Collection: "c", Dimension: 4}, "not an http(s)://host[:port] URL"},
		{Config{URL: "http://localhost:99999", Collection: "c", Dimension: 4}, "bad port"},
		{Config{URL: "http://localhost", Dimension: 4}, "Collection is required"},
		{Config{URL: "http://localhost", Collection: "c"}, "Dimension 0"},
	} {
		err := tt.cfg.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("Validate(%v) = %v, want nil", tt.cfg, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("Validate(%v) = %v, want an error containing %q", tt.cfg, err, tt.want)
		}
	}
	host, port, tls, _ := Config{URL: "https://q.example"}.endpoint()
	if host != "q.example" || port != DefaultPort || !tls {
		t.Errorf("endpoint = %s, %d, %v; want q.example, %d, true", host, port, tls, DefaultPort)
	}
	if s := (Config{URL: "http://u:secret@h", APIKey: "topsecret"}).String(); strings.Contains(s, "secret") {
		t.Errorf("String() leaks a secret: %s", s)
	}
}

func TestPayloadRoundTrip(t *testing.T) {
	c := rag.NewChunk("housing/youth-rent-support.md", "청년 월세", 3, "본문", map[string]string{"lang": "ko", "topic": "housing"})
	p, err := toPayload(c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := fromPayload(c.ID, p)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != c.ID || got.Source != c.Source || got.Title != c.Title || got.Index != 3 || got.Text != c.Text || got.Hash != c.Hash ||
		got.Metadata["lang"] != "ko" || got.Metadata["topic"] != "housing" || len(got.Metadata) != 2 {
		t.Errorf("round trip = %+v, want %+v", got, c)
	}
	if _, err := fromPayload(c.ID, nil); err == nil {
		t.Errorf("fromPayload of a foreign point: nil error")
	}
}

func TestFailCodesWithoutLeaking(t *testing.T) {
	x := &Index{cfg: Config{Collection: "docs"}}
	const raw = "rpc detail from the server"
	tests := []struct {
		name string
		err  error
		code string
	}{
		{"unavailable", status.Error(codes.Unavailable, raw), domain.EUNAVAILABLE},
		{"wrapped deadline", fmt.Errorf("call: %w", status.Error(codes.DeadlineExceeded, raw)), domain.EUNAVAILABLE},
		{"context deadline", fmt.Errorf("%s: %w", raw, context.DeadlineExceeded), domain.EUNAVAILABLE},
		{"invalid", status.Error(codes.InvalidArgument, raw), domain.EINVALID},
		{"not found", status.Error(codes.NotFound, raw), domain.ENOTFOUND},
		{"denied", status.Error(codes.PermissionDenied, raw), domain.EUNAUTHORIZED},
		{"other", errors.New(raw), domain.EINTERNAL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := x.fail("search", tt.err)
			if code := domain.ErrorCode(err); code != tt.code {
				t.Errorf("code %q, want %q (%v)", code, tt.code, err)
			}
			if msg := domain.ErrorMessage(err); strings.Contains(msg, raw) || strings.Contains(msg, "docs") {
				t.Errorf("client message %q leaks the server's error or the collection", msg)
			}
			if !strings.HasPrefix(err.Error(), "qdrant docs: search: ") || !strings.Contains(err.Error(), raw) || !errors.Is(err, tt.err) {
				t.Errorf("error %q does not name the collection and keep the client's error", err)
			}
		})
	}
}
