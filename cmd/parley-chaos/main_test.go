package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/parleychat/parley/cmd/internal/cli"
)

// TestCommandLine: parley-chaos follows the conventions of chatd and
// chatctl (cmd/internal/cli): help on stdout with status 0, a usage error
// with status 2 that names what is wrong, before anything starts.
func TestCommandLine(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string // in stdout
		wantErr  string // in the error
	}{
		{"help", []string{"--help"}, 0, "usage: parley-chaos --chatd PATH", ""},
		{"no chatd", nil, 2, "", "--chatd is required"},
		{"stray argument", []string{"--chatd", "x", "extra"}, 2, "", `unexpected argument "extra"`},
		{"bad rooms", []string{"--chatd", "x", "--rooms", "0"}, 2, "", "--rooms and --kills must be positive"},
		{"unknown flag", []string{"--nope"}, 2, "", "nope"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(t.Context(), tc.args, &stdout, &stderr)
			if got := cli.ExitCode(err); got != tc.wantCode {
				t.Fatalf("exit status %d (%v), want %d", got, err, tc.wantCode)
			}
			if !strings.Contains(stdout.String(), tc.wantOut) {
				t.Errorf("stdout %q lacks %q", stdout.String(), tc.wantOut)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("error %v, want one naming %q", err, tc.wantErr)
			}
		})
	}
}
