package main

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeClock is a hand-set clock.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestProgressPlainLines(t *testing.T) {
	for _, tc := range []struct {
		name  string
		total int64
		want  []string
	}{
		{"a known total", 100_000, []string{
			"rebuild chatlog: 50000/100000 events (50.0%), 10000 events/s, ETA 0:05, at position 50/1",
			"rebuild chatlog: 100000/100000 events (100.0%), 10000 events/s, done in 0:10, at position 100/1",
		}},
		{"no total", 0, []string{
			"rebuild chatlog: 50000 events, 10000 events/s, at position 50/1",
			"rebuild chatlog: 100000 events, 10000 events/s, at position 100/1",
			"rebuild chatlog: 100000 events, 10000 events/s, done in 0:10, at position 100/1",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			p := newProgressAt(&out, false, "rebuild chatlog", "events", tc.total, clock.now)
			for i := int64(1); i <= 100; i++ {
				clock.t = clock.t.Add(100 * time.Millisecond) // 1,000 events in each 100ms: 10,000/s
				p.update(i*1000, fmt.Sprintf("at position %d/1", i))
			}
			p.finish()
			p.finish() // once only
			got := strings.Split(strings.TrimSpace(out.String()), "\n")
			if diff := cmp.Diff(got, tc.want); diff != "" {
				t.Errorf("plain progress (-got +want):\n%s", diff)
			}
		})
	}
}

func TestProgressBarOnATerminal(t *testing.T) {
	var out bytes.Buffer
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	p := newProgressAt(&out, true, "rebuild chatlog", "events", 4_000_000, clock.now)
	clock.t = clock.t.Add(100 * time.Millisecond)
	p.update(100, "") // too soon to draw
	if out.Len() != 0 {
		t.Fatalf("drew %q before the first interval", out.String())
	}
	clock.t = clock.t.Add(time.Hour)
	p.update(1_000_000, "")
	clock.t = clock.t.Add(time.Second)
	p.update(2_000_000, "")
	p.finish()
	draws := strings.Split(out.String(), "\r")[1:]
	if len(draws) != 3 {
		t.Fatalf("%d draws in %q, want 3", len(draws), out.String())
	}
	if got, want := strings.TrimRight(draws[0], " "), "rebuild chatlog [#######.......................] 1000000/4000000 events (25.0%)  278 events/s  ETA 3:00:00"; got != want {
		t.Errorf("first draw = %q, want %q", got, want)
	}
	// Finished halfway: interrupted.
	if got, want := strings.TrimRight(draws[2], " \n"), "rebuild chatlog [###############...............] 2000000/4000000 events (50.0%)  555 events/s  stopped after 1:00:01"; got != want {
		t.Errorf("last draw = %q, want %q", got, want)
	}
	if !strings.HasSuffix(out.String(), "\n") {
		t.Error("the final draw does not end the line")
	}
	if len(draws[2]) < len(draws[1]) {
		t.Error("a shorter line does not blank out the longer one before it")
	}
}

// TestProgressFromWorkers: audit's workers add to one progress at once.
func TestProgressFromWorkers(t *testing.T) {
	var out bytes.Buffer
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	p := newProgressAt(&out, false, "verify", "rooms", 400, clock.now)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				p.add(1, "")
			}
		})
	}
	wg.Wait()
	clock.t = clock.t.Add(2 * time.Second)
	p.finish()
	if got, want := out.String(), "verify: 400/400 rooms (100.0%), 200 rooms/s, done in 0:02\n"; got != want {
		t.Errorf("progress = %q, want %q", got, want)
	}
}
