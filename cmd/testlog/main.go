// Command testlog reads `go test -json` on stdin and prints what a person
// running the suite needs: each package's result line, the whole output of
// every test that failed, and the SKIP lines of tests that did not run
// (integration tests whose server is not configured say so that way).
// Plain `go test ./...` shows a passing package's output to nobody, so a
// skipped integration test would go unnoticed.
//
// It exits 1 when a test or build failed, so `go test -json ./... |
// testlog` fails like go test itself (run it with pipefail as well).
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

// event is the part of a test2json event testlog reads.
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

func main() {
	failed, err := run(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testlog:", err)
		os.Exit(2)
	}
	if failed {
		os.Exit(1)
	}
}

// run copies the report of the events on in to out and reports whether
// anything failed.
func run(in io.Reader, out io.Writer) (failed bool, err error) {
	w := bufio.NewWriter(out)
	defer func() {
		if ferr := w.Flush(); err == nil {
			err = ferr
		}
	}()
	held := map[string][]string{} // a running test's output, by package and test
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var ev event
		if err := json.Unmarshal(line, &ev); err != nil || ev.Action == "" {
			// Not an event (go vet or the toolchain speaking): pass it on.
			fmt.Fprintf(w, "%s\n", line)
			continue
		}
		key := ev.Package + " " + ev.Test
		switch {
		case ev.Action == "build-output":
			fmt.Fprint(w, ev.Output)
		case ev.Action == "build-fail":
			failed = true
		case ev.Test == "" && ev.Action == "output":
			// Package lines: ok, FAIL, "?", and panics outside a test;
			// the bare PASS before ok says nothing more.
			if ev.Output != "PASS\n" {
				fmt.Fprint(w, ev.Output)
			}
		case ev.Test == "" && ev.Action == "fail":
			// Tests still running when their package failed (a panic, a
			// timeout) never report; show what they printed.
			failed = true
			for k, out := range held {
				if strings.HasPrefix(k, ev.Package+" ") {
					fmt.Fprint(w, strings.Join(out, ""))
					delete(held, k)
				}
			}
		case ev.Action == "output":
			held[key] = append(held[key], ev.Output)
		case ev.Action == "fail":
			failed = true
			for _, o := range held[key] {
				fmt.Fprint(w, o)
			}
			delete(held, key)
		case ev.Action == "skip":
			if why := skipReason(held[key]); why != "" {
				fmt.Fprintf(w, "--- SKIP: %s (%s): %s\n", ev.Test, ev.Package, why)
			}
			delete(held, key)
		case ev.Action == "pass":
			delete(held, key)
		}
	}
	if err := sc.Err(); err != nil {
		return failed, fmt.Errorf("read go test -json: %w", err)
	}
	return failed, nil
}

// skipReason is the message a skipped test gave, when it said SKIP: the
// last such line, without the file:line prefix t.Skip adds.
func skipReason(output []string) string {
	var why string
	for _, o := range output {
		o = strings.TrimSpace(o)
		if strings.HasPrefix(o, "--- SKIP") {
			continue
		}
		if i := strings.Index(o, "SKIP"); i >= 0 {
			why = o[i:]
		}
	}
	return why
}
