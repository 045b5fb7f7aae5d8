package vecindex

import (
	"fmt"
	"math/rand/v2"
	"runtime"
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
	if err := x.Upsert(t.Context(), chunks, vectors); err != nil {
		t.Fatal(err)
	}
	if err := x.DeleteSource(t.Context(), "s1"); err != nil {
		t.Fatal(err)
	}
	if got, want := x.Len(), 20; got != want {
		t.Fatalf("Len after delete = %d, want %d", got, want)
	}
	// Every remaining chunk is still found first by its own vector, which
	// it would not be if a moved slot had kept another's vector.
	for i, c := range chunks {
		if c.Source == "s1" {
			continue
		}
		hits, err := x.Search(t.Context(), vectors[i], rag.SearchOptions{K: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(hits) != 1 || hits[0].Chunk.ID != c.ID {
			t.Errorf("chunk %d: own vector finds %v", i, hits)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, cfg := range []Config{{}, {Dimension: -1}, {Dimension: 8, Rescore: -1}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v): nil error", cfg)
		}
	}
}
