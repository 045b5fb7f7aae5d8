package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestHelpExitsZero: -h on every subcommand prints its usage, flags
// included, and is not an error.
func TestHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{
		{"migrate", "-h"}, {"migrate", "up", "-h"}, {"migrate", "status", "-h"},
		{"token", "-h"}, {"chat", "-h"}, {"replay", "-h"}, {"export", "-h"}, {"ingest", "-h"},
		{"audit", "verify", "-h"}, {"audit", "head", "-h"}, {"audit", "keygen", "-h"},
		{"projections", "run", "-h"}, {"projections", "status", "-h"},
		{"projections", "rebuild", "-h"}, {"projections", "drop-old", "-h"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			if err := run(t.Context(), args, env(nil), strings.NewReader(""), &out, &errb); err != nil {
				t.Errorf("error %v, want none for -h", err)
			}
			if all := errb.String() + out.String(); !strings.Contains(all, "\n  -") {
				t.Errorf("output %q lists no flags", all)
			}
		})
	}
}
