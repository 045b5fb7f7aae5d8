package cli

import (
	"bytes"
	"errors"
	"flag"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseHelpAndErrors(t *testing.T) {
	newFS := func() *flag.FlagSet {
		fs := NewFlagSet("thing")
		fs.String("database", "", "the Postgres `URL` (default $PARLEY_DATABASE_URL)")
		fs.Duration("ttl", time.Hour, "how long")
		fs.Bool("all", false, "everything")
		return fs
	}
	const usage = "usage: chatctl thing [--ttl D]\n\nDoes a thing.\n"
	for _, tc := range []struct {
		args     []string
		code     int
		stdout   string // all of it, "" for none
		errParts []string
	}{
		{[]string{"-h"}, 0, usage + "\nflags:\n  --all\n        everything\n  --database URL\n        the Postgres URL (default $PARLEY_DATABASE_URL)\n  --ttl duration\n        how long (default 1h0m0s)\n", nil},
		{[]string{"--help"}, 0, "", nil},
		{[]string{"--nope"}, 2, "", []string{"thing: flag provided but not defined: --nope", "(see chatctl thing --help)"}},
		{[]string{"--ttl", "soon"}, 2, "", []string{`invalid value "soon" for flag --ttl`}},
		{[]string{"--ttl"}, 2, "", []string{"flag needs an argument: --ttl"}},
		{[]string{"--all=maybe"}, 2, "", []string{`invalid boolean value "maybe" for --all`}},
		{[]string{"--ttl=2h", "--all"}, 0, "", nil},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out bytes.Buffer
			err := Parse(newFS(), tc.args, "chatctl thing", usage, &out)
			if got := ExitCode(err); got != tc.code {
				t.Errorf("exit status %d (%v), want %d", got, err, tc.code)
			}
			if tc.stdout != "" && out.String() != tc.stdout {
				t.Errorf("stdout (-got +want):\n%s", cmp.Diff(out.String(), tc.stdout))
			}
			if tc.code != 0 && out.Len() > 0 {
				t.Errorf("an error wrote to stdout: %q", out.String())
			}
			for _, p := range tc.errParts {
				if err == nil || !strings.Contains(err.Error(), p) {
					t.Errorf("error %v, want it to contain %q", err, p)
				}
			}
		})
	}
}

func TestParseInterleaved(t *testing.T) {
	fs := NewFlagSet("rebuild")
	batch := fs.Int("batch", 1, "")
	dry := fs.Bool("dry-run", false, "")
	pos, err := ParseInterleaved(fs, []string{"--batch", "5", "chatlog", "--dry-run", "memory"}, "chatctl rebuild", "", nil)
	if err != nil || *batch != 5 || !*dry || strings.Join(pos, " ") != "chatlog memory" {
		t.Errorf("ParseInterleaved = %q, %v; batch %d, dry run %t", pos, err, *batch, *dry)
	}
}

func TestReportSaysItOnce(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{flag.ErrHelp, ""},
		{errors.New("connect to Postgres: refused"), "chatd: connect to Postgres: refused\n"},
		{Usagef("unexpected argument %q", "x"), "chatd: unexpected argument \"x\"\n(run `chatd --help` for usage)\n"},
		{Usagef("bad flag (see chatd --help)"), "chatd: bad flag (see chatd --help)\n"},
		{&ExitError{Code: 3, Err: errors.New("reconnect")}, "chatd: reconnect\n"},
	} {
		var b bytes.Buffer
		Report(&b, "chatd", tc.err)
		if b.String() != tc.want {
			t.Errorf("Report(%v) wrote %q, want %q", tc.err, b.String(), tc.want)
		}
	}
	if ExitCode(&ExitError{Code: 3, Err: errors.New("x")}) != 3 || ExitCode(errors.New("x")) != 1 || ExitCode(Usagef("x")) != 2 {
		t.Error("exit codes")
	}
}

func TestFormatVersion(t *testing.T) {
	for _, tc := range []struct {
		name     string
		version  string
		settings map[string]string
		want     string
	}{
		{"a release", "v1.2.3", nil, "chatd v1.2.3 (revision unknown: built without VCS stamping) go1.26.8"},
		{"a work tree", "", map[string]string{"vcs.revision": "3f2a9c1d0b7e44aa", "vcs.time": "2026-01-02T03:04:05Z", "vcs.modified": "true"},
			"chatd (devel) (revision 3f2a9c1d0b7e of 2026-01-02T03:04:05Z, modified) go1.26.8"},
		{"a clean commit", "v0.0.0-20260102030405-3f2a9c1d0b7e", map[string]string{"vcs.revision": "3f2a9c1d0b7e44aa", "vcs.modified": "false"},
			"chatd v0.0.0-20260102030405-3f2a9c1d0b7e (revision 3f2a9c1d0b7e) go1.26.8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/parleychat/parley", Version: tc.version}}
			for k, v := range tc.settings {
				info.Settings = append(info.Settings, debug.BuildSetting{Key: k, Value: v})
			}
			if got := formatVersion("chatd", info); got != tc.want {
				t.Errorf("formatVersion = %q, want %q", got, tc.want)
			}
		})
	}
}
