package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// chatdArgsEnv carries the arguments of a chatd run in a re-executed test
// binary (see TestChatdProcess), separated by \x1f.
const chatdArgsEnv = "CHATD_TEST_PROCESS_ARGS"

// TestChatdProcess is not a test: it is chatd itself, run by main, when a
// test re-executes its binary with chatdArgsEnv set, so that its output
// and exit status are a real process's.
func TestChatdProcess(t *testing.T) {
	args, ok := os.LookupEnv(chatdArgsEnv)
	if !ok {
		return
	}
	os.Args = []string{"chatd"}
	if args != "" {
		os.Args = append(os.Args, strings.Split(args, "\x1f")...)
	}
	main()
	os.Exit(0)
}

// runChatd runs chatd args in a child process with env and returns its
// output and exit status.
func runChatd(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestChatdProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), chatdArgsEnv+"="+strings.Join(args, "\x1f"))
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// TestCommandLine: help on stdout with status 0, a command line that
// cannot run reported once on stderr with status 2, the version, and no
// secret from the environment in any of it.
func TestCommandLine(t *testing.T) {
	t.Parallel()
	const password = "hunter2-db-password"
	env := map[string]string{
		"PARLEY_DATABASE_URL": "postgres://parley:" + password + "@db.example:5432/parley",
		"PARLEY_JWT_SECRET":   "a-jwt-secret-that-is-32-bytes-long!!",
		"PARLEY_HTTP_ADDR":    "127.0.0.1:1",
	}
	for _, tc := range []struct {
		name       string
		args       []string
		env        map[string]string
		code       int
		stdout     []string // parts of stdout; nil: empty
		stderrOnce string   // in stderr exactly once; "": stderr empty
	}{
		{"help", []string{"-h"}, nil, 0, []string{"usage: chatd", "--database URL", "(default $PARLEY_DATABASE_URL", "--version", "--projections"}, ""},
		{"help, long", []string{"--help"}, nil, 0, []string{"usage: chatd"}, ""},
		{"an unknown flag", []string{"--nope"}, nil, 2, nil, "flag provided but not defined: --nope"},
		{"an argument", []string{"serve"}, nil, 2, nil, `unexpected argument "serve"`},
		{"a flag without its value", []string{"--addr"}, nil, 2, nil, "flag needs an argument: --addr"},
		{"the version", []string{"--version"}, nil, 0, []string{"chatd "}, ""},
		{"a bad configuration", nil, map[string]string{"PARLEY_ANSWER_TIMEOUT": "soon"}, 1, nil, "invalid configuration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			vars := map[string]string{}
			for k, v := range env {
				vars[k] = v
			}
			for k, v := range tc.env {
				vars[k] = v
			}
			stdout, stderr, code := runChatd(t, vars, tc.args...)
			if code != tc.code {
				t.Errorf("exit status %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, stdout, stderr)
			}
			for _, p := range tc.stdout {
				if !strings.Contains(stdout, p) {
					t.Errorf("stdout lacks %q:\n%s", p, stdout)
				}
			}
			if tc.stdout == nil && stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
			switch {
			case tc.stderrOnce == "" && stderr != "":
				t.Errorf("stderr = %q, want nothing", stderr)
			case tc.stderrOnce != "" && strings.Count(stderr, tc.stderrOnce) != 1:
				t.Errorf("stderr says %q %d times, want once:\n%s", tc.stderrOnce, strings.Count(stderr, tc.stderrOnce), stderr)
			}
			if strings.Contains(stdout+stderr, password) {
				t.Errorf("the output shows PARLEY_DATABASE_URL's password:\n%s%s", stdout, stderr)
			}
			if strings.Contains(stdout+stderr, "-database string") || strings.Contains(stdout, "\n  -addr") {
				t.Errorf("a flag is shown as -flag:\n%s", stdout)
			}
		})
	}
}

// TestFlagsOverTheEnvironment: a flag given wins over its variable; one
// not given leaves it.
func TestFlagsOverTheEnvironment(t *testing.T) {
	env := map[string]string{"PARLEY_HTTP_ADDR": ":9000", "PARLEY_PROJECTIONS": "false", "PARLEY_INSTANCE": "a"}
	getenv := func(k string) string { return env[k] }
	cfg, err := parseConfig([]string{"--instance", "b"}, getenv, nil)
	if err != nil || cfg.HTTPAddr != ":9000" || cfg.Projections || cfg.Instance != "b" {
		t.Errorf("parseConfig = %+v, %v; want :9000, no projections, instance b", cfg, err)
	}
	cfg, err = parseConfig([]string{"--addr=:9001", "--projections"}, getenv, nil)
	if err != nil || cfg.HTTPAddr != ":9001" || !cfg.Projections || cfg.Instance != "a" {
		t.Errorf("parseConfig = %+v, %v; want :9001, projections, instance a", cfg, err)
	}
}
