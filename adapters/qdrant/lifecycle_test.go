package qdrant

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/rag"
	"github.com/parleychat/parley/domain/rag/ragtest"
)

// TestCallsRacingClose: requests in flight when the index closes, and
// requests after it, fail as unavailable; none panics (the client's Close
// empties the connection pool its requests pick from).
func TestCallsRacingClose(t *testing.T) {
	f, url := startFake(t)
	x, err := Open(t.Context(), Config{URL: url, Collection: "docs", Dimension: 4})
	if err != nil {
		t.Fatal(err)
	}
	chunk := rag.NewChunk("a.md", "", 0, "text", nil)
	if err := x.Upsert(t.Context(), []rag.Chunk{chunk}, ragtest.VectorsOf([]rag.Chunk{chunk}, [][]float32{{1, 0, 0, 0}})); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.block = make(chan struct{}) // requests hang until Close ends them
	f.mu.Unlock()
	var wg sync.WaitGroup
	errs := make(chan error, 300)
	for i := range 12 {
		wg.Go(func() {
			for range 20 {
				var err error
				switch i % 3 {
				case 0:
					_, err = x.Search(t.Context(), dense(1, 0, 0, 0), rag.SearchOptions{})
				case 1:
					_, err = x.Sources(t.Context())
				default:
					err = x.Upsert(t.Context(), []rag.Chunk{chunk}, ragtest.VectorsOf([]rag.Chunk{chunk}, [][]float32{{1, 0, 0, 0}}))
				}
				errs <- err
			}
		})
	}
	time.Sleep(100 * time.Millisecond)
	if err := x.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		n++
		if domain.ErrorCode(err) != domain.EUNAVAILABLE || !strings.Contains(err.Error(), "closed") {
			t.Errorf("a call racing Close: %v (code %q), want unavailable: closed", err, domain.ErrorCode(err))
		}
	}
	if n != 240 {
		t.Errorf("%d calls returned, want 240", n)
	}
	if err := x.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestResponsesPastGRPCsDefault: a search whose points carry up to
// MaxPayloadBytes each may answer with more than gRPC's 4 MiB default;
// a point larger than Parley writes is too_large, not unavailable.
func TestResponsesPastGRPCsDefault(t *testing.T) {
	f, url := startFake(t)
	x := openTemp(t, url, "", 4, 0)
	var chunks []rag.Chunk
	var vectors [][]float32
	for i := range 100 {
		chunks = append(chunks, rag.NewChunk("big.md", "", i, strings.Repeat("word ", 10_000), nil)) // ~50 KB each
		vectors = append(vectors, []float32{1, float32(i) / 100, 0, 0})
	}
	if err := x.Upsert(t.Context(), chunks, ragtest.VectorsOf(chunks, vectors)); err != nil {
		t.Fatal(err)
	}
	res, err := x.Search(t.Context(), dense(1, 0, 0, 0), rag.SearchOptions{K: 100, MinSimilarity: -1})
	if err != nil || len(res.Hits) != 100 {
		t.Fatalf("search for 100 points of 50 KB: %d hits, %v; want 100", len(res.Hits), err)
	}

	huge := rag.NewChunk("huge.md", "", 0, strings.Repeat("x", DefaultMaxPayloadBytes), nil)
	before := f.requests
	err = x.Upsert(t.Context(), []rag.Chunk{huge}, ragtest.VectorsOf([]rag.Chunk{huge}, [][]float32{{1, 0, 0, 0}}))
	if domain.ErrorCode(err) != domain.ETOOLARGE || f.requests != before {
		t.Errorf("upsert of a chunk over MaxPayloadBytes: %v (code %q), %d requests; want too_large, none sent", err, domain.ErrorCode(err), f.requests-before)
	}
	// Points larger than a reader expects (written by another writer,
	// or before its limit was lowered) are too large, not unavailable.
	x.cfg.MaxPayloadBytes = 1 << 10 // this reader expects 1 KiB points
	_, err = x.Search(t.Context(), dense(1, 0, 0, 0), rag.SearchOptions{K: 100, MinSimilarity: -1})
	if domain.ErrorCode(err) != domain.ETOOLARGE {
		t.Errorf("a response over what the index expects: %v (code %q), want too_large", err, domain.ErrorCode(err))
	}
}

// TestAPIKey: an API key goes only over TLS unless allowed; a refused
// key is the operator's to fix.
func TestAPIKey(t *testing.T) {
	f, url := startFake(t)
	f.apiKey = "right-key"
	_, err := Open(t.Context(), Config{URL: url, APIKey: "right-key", Collection: "docs", Dimension: 4})
	if err == nil || !strings.Contains(err.Error(), "clear text") || strings.Contains(err.Error(), "right-key") {
		t.Errorf("API key over http: %v, want it refused without showing the key", err)
	}
	x, err := Open(t.Context(), Config{URL: url, APIKey: "right-key", AllowInsecureAPIKey: true, Collection: "docs", Dimension: 4})
	if err != nil {
		t.Fatalf("API key over http, allowed: %v", err)
	}
	_ = x.Close()
	_, err = Open(t.Context(), Config{URL: url, APIKey: "wrong-key", AllowInsecureAPIKey: true, Collection: "docs", Dimension: 4})
	if domain.ErrorCode(err) != domain.EUNAVAILABLE || !errors.Is(err, domain.ErrPermanent) || strings.Contains(err.Error(), "wrong-key") {
		t.Errorf("a refused API key: %v (code %q), want a permanent unavailable error without the key", err, domain.ErrorCode(err))
	}
}

// TestRateLimited: Qdrant's strict-mode rate limit is rate_limited, with
// its Retry-After.
func TestRateLimited(t *testing.T) {
	f, url := startFake(t)
	x := openTemp(t, url, "", 4, 0)
	f.mu.Lock()
	f.rateLimited = 1
	f.mu.Unlock()
	_, err := x.Search(t.Context(), dense(1, 0, 0, 0), rag.SearchOptions{})
	if domain.ErrorCode(err) != domain.ERATELIMITED || domain.RetryAfter(err) != 3*time.Second {
		t.Errorf("a rate-limited search: %v (code %q, retry after %v), want rate_limited, 3s", err, domain.ErrorCode(err), domain.RetryAfter(err))
	}
	if _, err := x.Search(t.Context(), dense(1, 0, 0, 0), rag.SearchOptions{}); err != nil {
		t.Errorf("the next search: %v", err)
	}
}

// dense is a query of one dense vector.
func dense(v ...float32) rag.Query { return rag.Query{Dense: [][]float32{v}} }
