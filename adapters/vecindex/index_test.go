package vecindex

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/domain/rag"
	"github.com/parleychat/parley/domain/rag/ragtest"
)

func TestIndexContract(t *testing.T) {
	for _, exact := range []bool{false, true} {
		t.Run(fmt.Sprintf("exact=%v", exact), func(t *testing.T) {
			ragtest.RunIndexTests(t, func(t *testing.T, dim int) rag.Index {
				x, err := New(Config{Dimension: dim, Exact: exact})
				if err != nil {
					t.Fatal(err)
				}
				if !exact && runtime.GOARCH == "amd64" && !x.Quantised() {
					t.Log("no AVX2 here: the quantised path falls back to float32")
				}
				return x
			})
		})
	}
}

func TestDotsInt8MatchesPortableLoop(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for _, tt := range []struct{ stride, n int }{{32, 1}, {32, 5}, {64, 3}, {384, 100}, {1024, 7}, {96, 0}} {
		q := make([]int16, tt.stride)
		for i := range q {
			q[i] = int16(rng.IntN(8191) - 4095)
		}
		data := make([]int8, tt.stride*tt.n)
		for i := range data {
			data[i] = int8(rng.IntN(255) - 127)
		}
		got := make([]int32, tt.n)
		want := make([]int32, tt.n)
		dotsInt8(q, data, got)
		dotsInt8Go(q, data, want)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("stride %d, %d vectors (-portable +kernel):\n%s", tt.stride, tt.n, diff)
		}
	}
}

func TestDeleteKeepsArraysConsistent(t *testing.T) {
	x, err := New(Config{Dimension: 40})
	if err != nil {
		t.Fatal(err)
	}
	vectors := ragtest.Clustered(4, 30, 40, 3, 0.3)
	var chunks []rag.Chunk
	for i := range vectors {
		chunks = append(chunks, rag.NewChunk(fmt.Sprintf("s%d", i%3), "", i, fmt.Sprint(i), nil))
	}
	vs := make([]rag.Vectors, len(chunks))
	for i, c := range chunks {
		vs[i] = rag.Vectors{Dense: vectors[i], Sparse: rag.TermCounts(word(i) + " shared")}
		_ = c
	}
	if err := x.Upsert(t.Context(), chunks, vs); err != nil {
		t.Fatal(err)
	}
	if err := x.DeleteSource(t.Context(), "s1"); err != nil {
		t.Fatal(err)
	}
	if got, want := x.Len(), 20; got != want {
		t.Fatalf("Len after delete = %d, want %d", got, want)
	}
	// Every remaining chunk is still found first by its own vector and its
	// own word, which it would not be if a moved slot had kept another's.
	for i, c := range chunks {
		q := rag.Query{Dense: [][]float32{vectors[i]}, Sparse: []rag.SparseVector{rag.QueryTerms(word(i))}}
		res, err := x.Search(t.Context(), q, rag.SearchOptions{K: 1})
		if err != nil {
			t.Fatal(err)
		}
		if c.Source == "s1" {
			if len(res.Lists[0].Hits) != 0 {
				t.Errorf("chunk %d was deleted, its word finds %v", i, res.Lists[0].Hits)
			}
			continue
		}
		if len(res.Hits) != 1 || res.Hits[0].Chunk.ID != c.ID || res.Lists[0].Hits[0].ChunkID != c.ID || res.Lists[1].Hits[0].ChunkID != c.ID {
			t.Errorf("chunk %d: own vector and word find %+v", i, res)
		}
	}
	if x.docs != 20 || len(x.post[rag.QueryTerms("shared").Indices[0]].slots) != 20 {
		t.Errorf("statistics after delete: %d chunks with terms, shared in %d; want 20 and 20", x.docs, len(x.post[rag.QueryTerms("shared").Indices[0]].slots))
	}
}

// word returns a word of its own for each i.
func word(i int) string { return "x" + strings.Repeat("z", i) + "q" }

func TestConfigValidate(t *testing.T) {
	for _, cfg := range []Config{{Dimension: -1}, {Dimension: 8, Rescore: -1}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v): nil error", cfg)
		}
	}
}
