package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/domain"
)

// fakeClock is a hand-set clock.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestProgressPlainLines(t *testing.T) {
	var out bytes.Buffer
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	p := newPositionProgress(&out, false, "rebuild chatlog", 100_000, clock.now)
	for i := int64(1); i <= 100; i++ {
		clock.t = clock.t.Add(100 * time.Millisecond) // 1,000 events in each 100ms: 10,000/s
		p.update(i*1000, domain.Position{Commit: uint64(i), Prepare: 1})
	}
	p.finish()
	p.finish() // once only
	got := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []string{
		"rebuild chatlog: 100000 events to apply",
		"rebuild chatlog: 50000/100000 events (50.0%), 10000 events/s, ETA 0:05, at position 50/1",
		"rebuild chatlog: 100000/100000 events (100.0%), 10000 events/s, done in 0:10, at position 100/1",
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("plain progress (-got +want):\n%s", diff)
	}
}

func TestProgressBarOnATerminal(t *testing.T) {
	var out bytes.Buffer
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	p := newPositionProgress(&out, true, "rebuild chatlog", 4_000_000, clock.now)
	clock.t = clock.t.Add(100 * time.Millisecond)
	p.update(100, domain.Start) // too soon to draw
	if out.Len() != 0 {
		t.Fatalf("drew %q before the first interval", out.String())
	}
	clock.t = clock.t.Add(time.Hour)
	p.update(1_000_000, domain.Start)
	clock.t = clock.t.Add(time.Second)
	p.update(2_000_000, domain.Start)
	p.finish()
	draws := strings.Split(out.String(), "\r")[1:]
	if len(draws) != 3 {
		t.Fatalf("%d draws in %q, want 3", len(draws), out.String())
	}
	if got, want := strings.TrimRight(draws[0], " "), "rebuild chatlog [#######.......................]  25.0% 1000000/4000000 events  278 events/s  ETA 3:00:00"; got != want {
		t.Errorf("first draw = %q, want %q", got, want)
	}
	// Finished halfway: interrupted.
	if got, want := strings.TrimRight(draws[2], " \n"), "rebuild chatlog [###############...............]  50.0% 2000000/4000000 events  555 events/s  stopped after 1:00:01"; got != want {
		t.Errorf("last draw = %q, want %q", got, want)
	}
	if !strings.HasSuffix(out.String(), "\n") {
		t.Error("the final draw does not end the line")
	}
	if len(draws[2]) < len(draws[1]) {
		t.Error("a shorter line does not blank out the longer one before it")
	}
}
