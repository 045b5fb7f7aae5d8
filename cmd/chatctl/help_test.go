package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// helpCommands are every command and subcommand with flags.
var helpCommands = [][]string{
	{"migrate", "up"}, {"migrate", "status"},
	{"token"}, {"chat"}, {"replay"}, {"export"}, {"ingest"},
	{"audit", "verify"}, {"audit", "head"}, {"audit", "keygen"},
	{"projections", "run"}, {"projections", "status"},
	{"projections", "rebuild"}, {"projections", "drop-old"},
	{"checkconfig"}, {"version"},
}

// helpEnv holds a secret in every variable a default could come from.
func helpEnv() func(string) string {
	return env(map[string]string{
		"PARLEY_DATABASE_URL":  "postgres://parley:db-secret-1@db:5432/parley",
		"PARLEY_REDIS_URL":     "redis://:redis-secret-2@redis:6379/0",
		"PARLEY_JWT_SECRET":    "jwt-secret-3-that-is-32-bytes-long!",
		"PARLEY_KURRENTDB_URL": "esdb://admin:kurrent-secret-4@kdb:2113",
	})
}

func runCLI(t *testing.T, getenv func(string) string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(t.Context(), args, getenv, strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), exitCode(err)
}

// TestHelpBehavesLikeOneProgram: for every command, -h, --help and
// `chatctl help <command>` print the same help, flags and all, shown as
// --flag, on stdout, with exit status 0; and no secret of the environment
// is ever shown as a default.
func TestHelpBehavesLikeOneProgram(t *testing.T) {
	for _, args := range helpCommands {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var helps []string
			for _, a := range [][]string{append(args, "-h"), append(args, "--help"), append([]string{"help"}, args...)} {
				stdout, stderr, code := runCLI(t, helpEnv(), a...)
				if code != 0 || stderr != "" {
					t.Errorf("chatctl %s: exit %d, stderr %q; want 0 and nothing", strings.Join(a, " "), code, stderr)
				}
				helps = append(helps, stdout)
			}
			if helps[0] != helps[1] || helps[0] != helps[2] {
				t.Errorf("-h, --help and help print different texts:\n%s\n---\n%s\n---\n%s", helps[0], helps[1], helps[2])
			}
			h := helps[0]
			if !strings.HasPrefix(h, "usage: chatctl "+strings.Join(args, " ")) {
				t.Errorf("help does not start with its usage line:\n%s", h)
			}
			if args[0] != "version" && args[0] != "checkconfig" && !strings.Contains(h, "\n  --") {
				t.Errorf("help lists no flags:\n%s", h)
			}
			if strings.Contains(h, "\n  -") && !strings.Contains(h, "\n  --") {
				t.Errorf("help shows a flag as -flag:\n%s", h)
			}
			for _, secret := range []string{"db-secret-1", "redis-secret-2", "jwt-secret-3", "kurrent-secret-4"} {
				if strings.Contains(h, secret) {
					t.Errorf("help shows a secret of the environment (%s):\n%s", secret, h)
				}
			}
		})
	}
	// The groups' help lists their commands, the same three ways.
	for _, group := range [][]string{nil, {"migrate"}, {"audit"}, {"projections"}} {
		var helps []string
		for _, a := range [][]string{append(group, "-h"), append(group, "--help"), append([]string{"help"}, group...)} {
			stdout, stderr, code := runCLI(t, helpEnv(), a...)
			if code != 0 || stderr != "" || !strings.Contains(stdout, "commands:") {
				t.Errorf("chatctl %s: exit %d, stderr %q, stdout %q", strings.Join(a, " "), code, stderr, stdout)
			}
			helps = append(helps, stdout)
		}
		if helps[0] != helps[1] || helps[0] != helps[2] {
			t.Errorf("help of %q differs between -h, --help and help", group)
		}
	}
}

// TestUsageErrors: a command line that cannot run is an error (reported
// once, by main, on stderr) with exit status 2, and prints nothing on
// stdout.
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "say which command"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"help", "frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"token", "--nope"}, "token: flag provided but not defined: --nope (see chatctl token --help)"},
		{[]string{"migrate", "sideways"}, `unknown command "sideways"`},
		{[]string{"migrate", "up", "extra"}, "takes no arguments"},
		{[]string{"audit", "verify"}, "say which rooms"},
		{[]string{"projections", "rebuild", "--batch"}, "flag needs an argument: --batch"},
		{[]string{"version", "now"}, "takes no arguments"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			err := run(t.Context(), tc.args, helpEnv(), strings.NewReader(""), &out, &errb)
			if code := exitCode(err); code != 2 || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v (exit %d), want exit 2 and %q", err, code, tc.want)
			}
			if out.Len() > 0 {
				t.Errorf("stdout %q, want nothing", out.String())
			}
		})
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		stdout, stderr, code := runCLI(t, env(nil), args...)
		if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "chatctl ") || !strings.Contains(stdout, " go1.") {
			t.Errorf("chatctl %s = %q, %q, exit %d", args[0], stdout, stderr, code)
		}
	}
}

func TestCheckConfig(t *testing.T) {
	stdout, stderr, code := runCLI(t, env(map[string]string{
		"PARLEY_DATABASE_URL": "postgres://parley:db-secret-1@db:5432/parley",
		"PARLEY_JWT_SECRET":   "jwt-secret-3-that-is-32-bytes-long!",
		"PARLEY_EVENT_STORE":  "kurrentdb", "PARLEY_KURRENTDB_URL": "esdb://kdb:2113?tls=false",
	}), "checkconfig")
	if code != 0 || !strings.Contains(stdout, "configuration is valid") || !strings.Contains(stdout, "event_store") || !strings.Contains(stdout, "kurrentdb") {
		t.Errorf("checkconfig of a valid environment: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if strings.Contains(stdout+stderr, "db-secret-1") || strings.Contains(stdout+stderr, "jwt-secret-3") {
		t.Errorf("checkconfig shows a secret:\n%s%s", stdout, stderr)
	}
	// Every problem, at once, as chatd would report them at start.
	_, _, code = runCLI(t, env(map[string]string{"PARLEY_HTTP_ADDR": "nohost", "PARLEY_ANSWER_TIMEOUT": "soon", "PARLEY_EVENT_STORE": "mysql"}), "checkconfig")
	var out, errb bytes.Buffer
	err := run(t.Context(), []string{"checkconfig"}, env(map[string]string{"PARLEY_HTTP_ADDR": "nohost", "PARLEY_ANSWER_TIMEOUT": "soon", "PARLEY_EVENT_STORE": "mysql"}), nil, &out, &errb)
	if code != 1 || err == nil {
		t.Fatalf("checkconfig of a broken environment: exit %d, %v", code, err)
	}
	for _, want := range []string{"chatd would not start", "listen address", "PARLEY_ANSWER_TIMEOUT", "PARLEY_EVENT_STORE"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("checkconfig's error %q lacks %q", err, want)
		}
	}
	// With no key, it warns about the development secret.
	if _, stderr, code := runCLI(t, env(nil), "checkconfig"); code != 0 || !strings.Contains(stderr, "development secret") {
		t.Errorf("checkconfig of the defaults: exit %d, stderr %q", code, stderr)
	}
}

// TestVersionOfABuild: a binary built with VCS stamping (as go build does
// in a checkout) names the commit it was built from, and whether the
// work tree had changes then.
func TestVersionOfABuild(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: builds chatctl; run without -short")
	}
	rev, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("SKIP: not in a git checkout (%v): no revision to stamp", err)
	}
	status, err := exec.Command("git", "status", "--porcelain").Output()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "chatctl")
	build := exec.Command("go", "build", "-buildvcs=true", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	got := string(out)
	if strings.Contains(got, "built without VCS stamping") {
		// go build finds a repository by its .git directory; a git
		// worktree has a .git file, and go stamps nothing there.
		top, _ := exec.Command("git", "rev-parse", "--show-toplevel").Output()
		if fi, err := os.Stat(filepath.Join(strings.TrimSpace(string(top)), ".git")); err == nil && !fi.IsDir() {
			t.Skipf("SKIP: go build stamps no revision in a git worktree (.git is a file), as here (%q); in a clone it does", strings.TrimSpace(got))
		}
	}
	want := "(revision " + strings.TrimSpace(string(rev))[:12] + " of "
	if !strings.HasPrefix(got, "chatctl ") || !strings.Contains(got, want) {
		t.Errorf("chatctl --version = %q, want it to contain %q", got, want)
	}
	if dirty := len(bytes.TrimSpace(status)) > 0; dirty != strings.Contains(got, ", modified)") {
		t.Errorf("chatctl --version = %q; the work tree has changes: %t", got, dirty)
	}
}
