package qdrant

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	qc "github.com/qdrant/go-client/qdrant"
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
	for _, dim := range []int{8, 0} {
		name := fmt.Sprint("docs-", dim)
		x, err := Open(t.Context(), Config{URL: url, Collection: name, Dimension: dim})
		if err != nil {
			t.Fatal(err)
		}
		x.Close()
		c := f.collections[name]
		if dense := c.denseParams(vectorDense); (dim > 0) != (dense != nil) || dim > 0 && (dense.GetSize() != 8 || dense.GetDistance().String() != "Cosine") {
			t.Errorf("dimension %d: created dense vector %v, want size 8, Cosine, or none", dim, dense)
		}
		if sp := c.sparse[vectorSparse]; sp == nil || sp.GetModifier() != qc.Modifier_Idf {
			t.Errorf("dimension %d: created sparse vector %v, want %q with the idf modifier", dim, sp, vectorSparse)
		}
		// Reopening with the same settings is fine; another dimension is not.
		if x, err = Open(t.Context(), Config{URL: url, Collection: name, Dimension: dim}); err != nil {
			t.Errorf("reopen: %v", err)
		} else {
			x.Close()
		}
	}
	for _, tt := range []struct {
		collection string
		dim        int
		want       string
	}{
		{"docs-8", 16, "8-dimensional"},
		{"docs-8", 0, "the embedder needs none"},
		{"docs-0", 8, `the embedder needs "dense" of 8 dimensions`},
	} {
		_, err := Open(t.Context(), Config{URL: url, Collection: tt.collection, Dimension: tt.dim})
		if code := domain.ErrorCode(err); code != domain.EINVALID || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("open %s with dimension %d: %v (code %q), want %q saying %q", tt.collection, tt.dim, err, code, domain.EINVALID, tt.want)
		}
	}
	// A collection as Parley made them before sparse vectors: refused, with what to do.
	f.collections["old"] = &fakeCollection{vectors: qc.NewVectorsConfig(&qc.VectorParams{Size: 8, Distance: qc.Distance_Cosine}), points: map[string]*fakePoint{}}
	_, err := Open(t.Context(), Config{URL: url, Collection: "old", Dimension: 8})
	if code := domain.ErrorCode(err); code != domain.EINVALID || !strings.Contains(err.Error(), "PARLEY_RAG_COLLECTION") {
		t.Errorf("open an old collection: %v (code %q), want %q saying what to do", err, code, domain.EINVALID)
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
	if err := x.Upsert(t.Context(), chunks, ragtest.VectorsOf(chunks, vectors)); err != nil {
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

// TestReweigh: points written while the collection was smaller carry
// weights for its old average length; Reweigh rewrites exactly those, and
// nothing once the average holds.
func TestReweigh(t *testing.T) {
	f, url := startFake(t)
	x := openTemp(t, url, "", 0, 0)
	write := func(source string, texts ...string) {
		t.Helper()
		var chunks []rag.Chunk
		for i, text := range texts {
			chunks = append(chunks, rag.NewChunk(source, "", i, text, nil))
		}
		if err := x.Upsert(t.Context(), chunks, ragtest.VectorsOf(chunks, nil)); err != nil {
			t.Fatal(err)
		}
	}
	reweigh := func(want int) {
		t.Helper()
		f.requests = 0
		n, err := x.Reweigh(t.Context())
		if err != nil || n != want {
			t.Fatalf("Reweigh = %d, %v; want %d rewritten", n, err, want)
		}
	}
	write("a.md", "rent", "loan")             // average 1
	reweigh(0)                                // written with it
	write("b.md", "rent grant lease deposit") // average 6/3 = 2, as b.md was written
	reweigh(2)                                // a.md's two
	reweigh(0)
	if f.requests != 0 {
		t.Errorf("a Reweigh with nothing to do wrote %d times", f.requests)
	}
	// The rewritten weights are those of the new average: rent in a.md
	// (length 1 of 2) outweighs rent in b.md (length 4).
	res, err := x.Search(t.Context(), rag.Query{Sparse: []rag.SparseVector{rag.QueryTerms("rent")}}, rag.SearchOptions{K: 2})
	if err != nil || len(res.Lists[0].Hits) != 2 {
		t.Fatalf("search: %+v, %v", res, err)
	}
	want := map[string]float64{"a.md": rag.DefaultBM25.Weight(1, 1, 2) / 2.2, "b.md": rag.DefaultBM25.Weight(1, 4, 2) / 2.2}
	for _, h := range res.Lists[0].Hits {
		if math.Abs(h.Score-want[h.Source]) > 1e-5 {
			t.Errorf("%s scores %v for rent, want %v", h.Source, h.Score, want[h.Source])
		}
	}
}

func TestUnreachableServerIsUnavailable(t *testing.T) {
	f, url := startFake(t)
	x := openTemp(t, url, "", 4, 0)
	f.stop()
	_, err := x.Search(t.Context(), rag.Query{Dense: [][]float32{{1, 0, 0, 0}}}, rag.SearchOptions{})
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
		{Config{URL: "http://localhost", Collection: "c"}, ""},
		{Config{URL: "http://localhost", Collection: "c", Dimension: -1}, "Dimension -1"},
		{Config{URL: "http://q.example", Collection: "c", Dimension: 4, APIKey: "k"}, "clear text"},
		{Config{URL: "http://q.example", Collection: "c", Dimension: 4, APIKey: "k", AllowInsecureAPIKey: true}, ""},
		{Config{URL: "http://localhost", Collection: "c", Dimension: 4, MaxPayloadBytes: -1}, "MaxPayloadBytes -1"},
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
	p, err := toPayload(c, 12, 10.5)
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
	if number(p[fieldTokens]) != 12 || number(p[fieldAvgTokens]) != 10.5 {
		t.Errorf("payload lengths %v, %v; want 12 and 10.5", p[fieldTokens], p[fieldAvgTokens])
	}
	if _, err := fromPayload(c.ID, nil); err == nil {
		t.Errorf("fromPayload of a foreign point: nil error")
	}
}

func TestFailCodesWithoutLeaking(t *testing.T) {
	x := &Index{cfg: Config{Collection: "docs", MaxPayloadBytes: DefaultMaxPayloadBytes}}
	const raw = "rpc detail from the server"
	tests := []struct {
		name      string
		err       error
		code      string
		permanent bool
		wait      time.Duration
	}{
		{"unavailable", status.Error(codes.Unavailable, raw), domain.EUNAVAILABLE, false, 0},
		{"wrapped deadline", fmt.Errorf("call: %w", status.Error(codes.DeadlineExceeded, raw)), domain.EUNAVAILABLE, false, 0},
		{"context deadline", fmt.Errorf("%s: %w", raw, context.DeadlineExceeded), domain.EUNAVAILABLE, false, 0},
		{"closed", errClosed, domain.EUNAVAILABLE, false, 0},
		{"rate limited", &qc.QdrantResourceExhaustedError{Reason: raw, RetryAfterS: 3}, domain.ERATELIMITED, false, 3 * time.Second},
		{"response too large", status.Error(codes.ResourceExhausted, "grpc: received message larger than max (5000000 vs. 4194304)"), domain.ETOOLARGE, false, 0},
		{"out of disk", status.Error(codes.ResourceExhausted, raw), domain.EUNAVAILABLE, false, 0},
		{"invalid", status.Error(codes.InvalidArgument, raw), domain.EINVALID, false, 0},
		{"locked", status.Error(codes.FailedPrecondition, raw), domain.EUNAVAILABLE, false, 0},
		{"collection gone", status.Error(codes.NotFound, raw), domain.EUNAVAILABLE, true, 0},
		{"api key refused", status.Error(codes.PermissionDenied, raw), domain.EUNAVAILABLE, true, 0},
		{"unauthenticated", status.Error(codes.Unauthenticated, raw), domain.EUNAVAILABLE, true, 0},
		{"old server", status.Error(codes.Unimplemented, raw), domain.EUNAVAILABLE, true, 0},
		{"other", errors.New(raw), domain.EINTERNAL, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := x.fail("search", tt.err)
			if code := domain.ErrorCode(err); code != tt.code {
				t.Errorf("code %q, want %q (%v)", code, tt.code, err)
			}
			if got := errors.Is(err, domain.ErrPermanent); got != tt.permanent {
				t.Errorf("permanent = %v, want %v (%v)", got, tt.permanent, err)
			}
			if got := domain.RetryAfter(err); got != tt.wait {
				t.Errorf("RetryAfter = %v, want %v", got, tt.wait)
			}
			if msg := domain.ErrorMessage(err); strings.Contains(msg, raw) || strings.Contains(msg, "docs") {
				t.Errorf("client message %q leaks the server's error or the collection", msg)
			}
			keeps := strings.Contains(err.Error(), raw) || tt.name == "closed" || tt.name == "response too large"
			if !strings.HasPrefix(err.Error(), "qdrant docs: search: ") || !keeps || !errors.Is(err, tt.err) {
				t.Errorf("error %q does not name the collection and keep the client's error", err)
			}
		})
	}
}
