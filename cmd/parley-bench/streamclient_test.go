package main

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestReceivedCountsEveryToken(t *testing.T) {
	m := &modelServer{epoch: time.Now(), plans: map[string]*answerPlan{}}
	p := m.plan("t", 6, 0, 0)
	join := func(from, to int) string { return strings.Join(p.tokens[from:to], "") }
	type chunk struct {
		first, count int
		text         string
	}
	tests := []struct {
		name                         string
		chunks                       []chunk
		received                     []bool
		dups, reordered, corrupt, nx int
	}{
		{"one token a chunk", []chunk{{0, 1, join(0, 1)}, {1, 1, join(1, 2)}, {2, 1, join(2, 3)}},
			[]bool{true, true, true, false, false, false}, 0, 0, 0, 3},
		{"several tokens a chunk", []chunk{{0, 3, join(0, 3)}, {3, 3, join(3, 6)}},
			[]bool{true, true, true, true, true, true}, 0, 0, 0, 6},
		{"a chunk again", []chunk{{0, 2, join(0, 2)}, {0, 2, join(0, 2)}, {2, 1, join(2, 3)}},
			[]bool{true, true, true, false, false, false}, 2, 0, 0, 3},
		{"a gap filled late", []chunk{{0, 1, join(0, 1)}, {2, 2, join(2, 4)}, {1, 1, join(1, 2)}},
			[]bool{true, true, true, true, false, false}, 0, 1, 0, 4},
		{"text that is not the model's", []chunk{{0, 2, "nonsense"}, {0, 1, join(0, 1)}},
			[]bool{true, false, false, false, false, false}, 0, 0, 1, 1},
		{"beyond the answer", []chunk{{5, 2, join(5, 6) + "x"}},
			[]bool{false, false, false, false, false, false}, 0, 0, 1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &answerRecord{plan: p, recv: make([]int64, len(p.tokens))}
			next := 0
			for i, c := range tc.chunks {
				next = r.received(c.first, c.count, c.text, int64(i+1), next)
			}
			got := make([]bool, len(r.recv))
			for i, at := range r.recv {
				got[i] = at != 0
			}
			if diff := cmp.Diff(tc.received, got); diff != "" {
				t.Errorf("received (-want +got):\n%s", diff)
			}
			if r.dups != tc.dups || r.reordered != tc.reordered || r.corrupt != tc.corrupt || next != tc.nx {
				t.Errorf("dups %d reordered %d corrupt %d next %d; want %d %d %d %d", r.dups, r.reordered, r.corrupt, next, tc.dups, tc.reordered, tc.corrupt, tc.nx)
			}
		})
	}
}

// TestTallyCountsTheWindow: only tokens the model emitted inside the
// window count, lost or delivered.
func TestTallyCountsTheWindow(t *testing.T) {
	m := &modelServer{epoch: time.Now(), plans: map[string]*answerPlan{}}
	p := m.plan("t", 4, 0, 0)
	p.requested.Store(5)
	for i, at := range []int64{10, 20, 30, 40} {
		p.emitted[i].Store(at)
	}
	rec := &answerRecord{plan: p, askedAt: 16, firstChunk: 19, recv: []int64{11, 25, 0, 41}, outcome: "answer"}
	var r roundResult
	r.tally([]*answerRecord{rec}, m, m.epoch.Add(15), m.epoch.Add(40))
	if r.emitted != 2 || r.delivered != 1 || r.lost != 1 || r.answers != 1 {
		t.Errorf("emitted %d delivered %d lost %d answers %d; want 2 1 1 1", r.emitted, r.delivered, r.lost, r.answers)
	}
	if diff := cmp.Diff([]time.Duration{5}, r.lat); diff != "" {
		t.Errorf("latencies (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]time.Duration{3}, r.firstChunk); diff != "" {
		t.Errorf("question → first chunk (-want +got):\n%s", diff)
	}
}
