package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/parleychat/parley/domain"
)

// Progress output: on a terminal a bar redrawn in place at most every
// ttyEvery; otherwise a plain line every plainEvery.
const (
	ttyEvery   = 200 * time.Millisecond
	plainEvery = 5 * time.Second
	barWidth   = 30
)

// positionProgress reports a long job's advance towards a known total of events,
// with its rate and the time left.
type positionProgress struct {
	w      io.Writer
	tty    bool
	label  string
	total  int64
	now    func() time.Time
	start  time.Time
	last   time.Time // of the last line written
	done   int64
	at     domain.Position
	width  int // of the last bar drawn, to blank it out
	closed bool
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// newPositionProgress starts reporting on w: a redrawn bar when tty is set (see
// isTerminal), plain lines otherwise.
func newPositionProgress(w io.Writer, tty bool, label string, total int64, now func() time.Time) *positionProgress {
	p := &positionProgress{w: w, tty: tty, label: label, total: total, now: now, start: now()}
	p.last = p.start
	if !p.tty {
		fmt.Fprintf(w, "%s: %d events to apply\n", label, total)
	}
	return p
}

// update records that done events are applied, the last at position at,
// and redraws when it is time.
func (p *positionProgress) update(done int64, at domain.Position) {
	p.done, p.at = done, at
	if done >= p.total {
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

// finish writes the final line.
func (p *positionProgress) finish() {
	if p.closed {
		return
	}
	p.closed = true
	p.write(true)
}

func (p *positionProgress) write(final bool) {
	elapsed := p.now().Sub(p.start)
	rate := 0.0
	if elapsed > 0 {
		rate = float64(p.done) / elapsed.Seconds()
	}
	frac := 1.0
	if p.total > 0 {
		frac = min(float64(p.done)/float64(p.total), 1)
	}
	eta := "?"
	switch {
	case final && p.done >= p.total:
		eta = "done in " + fmtDuration(elapsed)
	case final:
		eta = "stopped after " + fmtDuration(elapsed)
	case rate > 0:
		eta = "ETA " + fmtDuration(time.Duration(float64(p.total-p.done)/rate*float64(time.Second)))
	}
	if !p.tty {
		fmt.Fprintf(p.w, "%s: %d/%d events (%.1f%%), %.0f events/s, %s, at position %s\n",
			p.label, p.done, p.total, 100*frac, rate, eta, p.at)
		return
	}
	fill := int(frac * barWidth)
	line := fmt.Sprintf("%s [%s%s] %5.1f%% %d/%d events  %.0f events/s  %s",
		p.label, strings.Repeat("#", fill), strings.Repeat(".", barWidth-fill), 100*frac, p.done, p.total, rate, eta)
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
