package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// Progress output: on a terminal a bar redrawn in place at most every
// ttyEvery; otherwise a plain line every plainEvery.
const (
	ttyEvery   = 200 * time.Millisecond
	plainEvery = 5 * time.Second
	barWidth   = 30
)

// progress is chatctl's one progress reporter, for every long job
// (ingest, rebuild, audit, export): how many units are done, of how many
// when the total is known, the rate and the time left, and a detail the
// job adds (a position, a document, a count of broken rooms). On a
// terminal it redraws one line in place; otherwise it writes a plain line
// every few seconds, for logs. It is safe for concurrent use.
type progress struct {
	w     io.Writer
	tty   bool
	label string
	unit  string
	total int64 // <= 0: unknown
	now   func() time.Time

	mu     sync.Mutex
	start  time.Time
	last   time.Time // of the last line written
	done   int64
	detail string
	width  int // of the last bar drawn, to blank it out
	wrote  bool
	closed bool
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// newProgress starts reporting on w (nil: nowhere) the advance of label
// towards total units (0 when unknown), as a bar when w is a terminal.
func newProgress(w io.Writer, label, unit string, total int64) *progress {
	return newProgressAt(w, isTerminal(w), label, unit, total, time.Now)
}

// newProgressAt is newProgress with the terminal test and the clock
// given, for tests.
func newProgressAt(w io.Writer, tty bool, label, unit string, total int64, now func() time.Time) *progress {
	if w == nil {
		w = io.Discard
	}
	t := now()
	return &progress{w: w, tty: tty, label: label, unit: unit, total: total, now: now, start: t, last: t}
}

// update records that done units are done, with detail, and writes a
// line when it is time.
func (p *progress) update(done int64, detail string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.record(done, detail)
}

// add is update with done increased by n.
func (p *progress) add(n int64, detail string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.record(p.done+n, detail)
}

// record is update's body; p.mu is held.
func (p *progress) record(done int64, detail string) {
	p.done, p.detail = done, detail
	if p.closed || (p.total > 0 && done >= p.total) {
		return // finish says it
	}
	t := p.now()
	every := plainEvery
	if p.tty {
		every = ttyEvery
	}
	if t.Sub(p.last) < every {
		return
	}
	p.last = t
	p.write(false)
}

// finish writes the final line, once: how much was done and how long it
// took. A job that ended before its total says where it stopped.
func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	p.write(true)
}

// write writes the line; p.mu is held.
func (p *progress) write(final bool) {
	p.wrote = true
	elapsed := p.now().Sub(p.start)
	rate := 0.0
	if elapsed > 0 {
		rate = float64(p.done) / elapsed.Seconds()
	}
	count := fmt.Sprintf("%d %s", p.done, p.unit)
	if p.total > 0 {
		count = fmt.Sprintf("%d/%d %s (%.1f%%)", p.done, p.total, p.unit, 100*min(float64(p.done)/float64(p.total), 1))
	}
	parts := []string{count, fmt.Sprintf("%.0f %s/s", rate, p.unit)}
	switch {
	case final && (p.total <= 0 || p.done >= p.total):
		parts = append(parts, "done in "+fmtDuration(elapsed))
	case final:
		parts = append(parts, "stopped after "+fmtDuration(elapsed))
	case p.total > 0 && rate > 0:
		parts = append(parts, "ETA "+fmtDuration(time.Duration(float64(p.total-p.done)/rate*float64(time.Second))))
	}
	if p.detail != "" {
		parts = append(parts, p.detail)
	}
	if !p.tty {
		fmt.Fprintf(p.w, "%s: %s\n", p.label, strings.Join(parts, ", "))
		return
	}
	line := p.label + " "
	if p.total > 0 {
		fill := int(min(float64(p.done)/float64(p.total), 1) * barWidth)
		line += "[" + strings.Repeat("#", fill) + strings.Repeat(".", barWidth-fill) + "] "
	}
	line += strings.Join(parts, "  ")
	pad := max(p.width-len(line), 0)
	p.width = len(line)
	fmt.Fprint(p.w, "\r"+line+strings.Repeat(" ", pad))
	if final {
		fmt.Fprintln(p.w)
	}
}

// fmtDuration prints d as h:mm:ss or m:ss.
func fmtDuration(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}
