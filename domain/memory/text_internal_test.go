package memory

import (
	"strconv"
	"testing"
)

// TestRankIsDeterministic: a sentence's score does not depend on the
// order Go happens to walk its terms in, so equal inputs give bit-equal
// scores and the extractive summary stays deterministic when sentences
// tie.
func TestRankIsDeterministic(t *testing.T) {
	ts := make([]map[string]float64, 6)
	for i := range ts {
		ts[i] = map[string]float64{}
		for j := range 40 {
			ts[i]["t"+strconv.Itoa((i*7+j)%53)] = 1 + float64(j%5)/3
		}
	}
	want := rank(ts)
	for range 200 {
		for i, got := range rank(ts) {
			if got != want[i] {
				t.Fatalf("sentence %d scored %v, then %v", i, want[i], got)
			}
		}
	}
}
