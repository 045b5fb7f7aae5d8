package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/parleychat/parley/cmd/internal/cli"
)

// TestMain lets the benchmarks re-run the test binary as their child
// processes (chatd, the idle clients), as they re-run parley-bench itself.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && (os.Args[1] == dialChildCommand || os.Args[1] == chatdChildCommand) {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestStreamBenchmarkRuns runs the stream benchmark tiny, so that it
// cannot rot: 2 rooms, one round of 1s per side, answers of 12 tokens, a
// sweep of one point.
func TestStreamBenchmarkRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: runs the stream benchmark against Postgres for several seconds")
	}
	got := runBench(t, "-corpus", "../../docs/corpus", "-rooms", "2", "-rate", "100", "-window", "1s", "-rounds", "1",
		"-sweep", "2", "-sweep-window", "1s", "-answer-tokens", "12", "-ttft", "5ms", "stream")
	for _, want := range []string{
		"(1) 2 rooms × 100 tok/s", "token latency p99 (ms)", "tokens delivered per s", "CPU ms per delivered token: chatd",
		"chatd + PostgreSQL + Redis", "PostgreSQL commits per s", "deltas per chunk append",
		"tokens lost, duplicated, reordered or corrupted, all rounds and sides: 0;", "targets (persisted):",
		"(2) sweep at 50 tok/s", "highest healthy rate: persisted",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}

// TestConnectBenchmarkRuns runs the connect benchmark tiny: a history of
// 3 turns, 5 connects per side, 20 idle sockets.
func TestConnectBenchmarkRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: runs the connect benchmark against Postgres for several seconds")
	}
	got := runBench(t, "-corpus", "../../docs/corpus", "-history-turns", "3", "-dials", "5", "-conns", "20", "connect")
	for _, want := range []string{
		"room of 6 messages", "chatd (jwt, room check, ChatLog + stream tail)", "baseline (upgrade, send a fixed frame)", "chatd p50 ",
		"heap+stacks/conn", "baseline (bare upgrader, 1 reader)", "× baseline; target ≤ 32 KiB",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}

// TestRebuildBenchmarkRuns runs the rebuild benchmark tiny: two logs of
// 3,000 events, one round. The benchmark itself checks that its sealed log
// and the ChatLog rebuilt from it hold their text sealed.
func TestRebuildBenchmarkRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: runs the rebuild benchmark against Postgres for several seconds")
	}
	got := runBench(t, "-rebuild-events", "3000", "-rounds", "1", "rebuild")
	for _, want := range []string{
		"log: 3000 events in ", "read: ReadAll loop", "rebuild: catch-up into shadow tables",
		"sealed read: ReadAll loop through privacy.Store, opened", "sealed rebuild: catch-up, decrypting",
		"sealed rebuild whole", "decryption: the sealed log rebuilds at ", "target (clear): ", "target (sealed): ",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}

// runBench runs parley-bench with args and returns what it printed, after
// checking it has no NaN or infinite figure.
func runBench(t *testing.T, args ...string) string {
	t.Helper()
	var out, progress bytes.Buffer
	if err := run(t.Context(), args, os.Getenv, &out, &progress); err != nil {
		t.Fatalf("parley-bench %s: %v\n%s", strings.Join(args, " "), err, progress.String())
	}
	got := out.String()
	if strings.Contains(got, "NaN") || strings.Contains(got, "Inf") {
		t.Errorf("output has a NaN or Inf figure:\n%s", got)
	}
	t.Logf("\n%s", got)
	return got
}

func TestFlagsValidated(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-rooms", "0", "stream"}, "-rooms 0"},
		{[]string{"-rate", "0", "stream"}, "-rate 0"},
		{[]string{"-window", "0s", "stream"}, "-window 0s"},
		{[]string{"-sweep", "50,10", "stream"}, "ascending"},
		{[]string{"-answer-tokens", "0", "stream"}, "-answer-tokens 0"},
		{[]string{"-conns", "-1", "connect"}, "-conns -1"},
		{[]string{"-dials", "0", "connect"}, "-dials 0"},
		{[]string{"-rebuild-events", "0", "rebuild"}, "-rebuild-events 0"},
		{[]string{"chat"}, `unknown benchmark "chat"`},
	}
	for _, tc := range tests {
		err := run(t.Context(), tc.args, func(string) string { return "" }, &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run %v = %v, want an error naming %q", tc.args, err, tc.want)
		}
		if code := cli.ExitCode(err); code != cli.ExitUsage {
			t.Errorf("run %v: exit status %d, want %d (a usage error)", tc.args, code, cli.ExitUsage)
		}
	}
	var stdout bytes.Buffer
	if err := run(t.Context(), []string{"--help"}, func(string) string { return "" }, &stdout, &bytes.Buffer{}); cli.ExitCode(err) != 0 || !strings.Contains(stdout.String(), "usage: parley-bench") {
		t.Errorf("--help: %v, stdout %q; want the usage on stdout and status 0", err, stdout.String())
	}
}
