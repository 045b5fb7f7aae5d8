package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/domain/chat"
)

// TestMain lets the memory figure re-run the test binary as its client
// process, as it re-runs parley-bench itself.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == dialChildCommand {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestChatBenchmarkRuns runs the chat benchmark tiny, so that it cannot
// rot: 2 rooms for 1s per side, 10 connects per side, 50 idle sockets.
func TestChatBenchmarkRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: runs the chat benchmark against Postgres for several seconds")
	}
	var out, progress bytes.Buffer
	args := []string{"-rooms", "2", "-rate", "200", "-chat-duration", "1s", "-rounds", "1", "-conns", "50", "-dials", "10", "chat"}
	if err := run(t.Context(), args, os.Getenv, &out, &progress); err != nil {
		t.Fatalf("parley-bench %s: %v\n%s", strings.Join(args, " "), err, progress.String())
	}
	got := out.String()
	for _, want := range []string{
		"  persisted  ", "  relay  ", "persisted p99 − relay p99 = ",
		"gateway (jwt, room check, ChatLog + stream tail)", "baseline (upgrade, send a fixed frame)", "gateway p50 ",
		"heap+stacks/conn", "baseline (bare upgrader, 1 reader)", "× baseline; target ≤ 32 KiB",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "NaN") || strings.Contains(got, "Inf") {
		t.Errorf("output has a NaN or Inf figure:\n%s", got)
	}
	t.Logf("\n%s", got)
}

func TestChatFlagsValidated(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-rooms", "0", "chat"}, "-rooms 0"},
		{[]string{"-rate", "0", "chat"}, "-rate 0"},
		{[]string{"-chat-duration", "0s", "chat"}, "-chat-duration 0s"},
		{[]string{"-conns", "-1", "chat"}, "-conns -1"},
		{[]string{"-dials", "0", "chat"}, "-dials 0"},
	}
	for _, tc := range tests {
		err := run(t.Context(), tc.args, func(string) string { return "" }, &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run %v = %v, want an error naming %q", tc.args, err, tc.want)
		}
	}
}

// words emits its words at once.
type words []string

func (w words) Name() string { return "words" }

func (w words) Generate(_ context.Context, _ chat.Prompt, emit func(string) error) error {
	for _, s := range w {
		if err := emit(s); err != nil {
			return err
		}
	}
	return nil
}

func TestStampedDeltasCarryTheirEmitTime(t *testing.T) {
	epoch := time.Now()
	var got []string
	before := time.Since(epoch)
	err := stamped{inner: words{"Up ", "to|", ""}, epoch: epoch}.Generate(t.Context(), chat.Prompt{}, func(d string) error {
		got = append(got, d)
		return nil
	})
	after := time.Since(epoch)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"Up ", "to|", ""} {
		at, err := emitted(got[i])
		if err != nil {
			t.Fatalf("delta %d %q: %v", i, got[i], err)
		}
		if at < before || at > after {
			t.Errorf("delta %d stamped %s, want between %s and %s", i, at, before, after)
		}
		if _, rest, _ := strings.Cut(got[i], "|"); rest != want {
			t.Errorf("delta %d text %q, want %q", i, rest, want)
		}
	}
	stop := errors.New("stop")
	err = stamped{inner: words{"a", "b"}, epoch: epoch}.Generate(t.Context(), chat.Prompt{}, func(string) error { return stop })
	if !errors.Is(err, stop) {
		t.Errorf("emit's error: got %v, want it returned as is", err)
	}
}

func TestEmittedRefusesUnstampedChunks(t *testing.T) {
	for _, d := range []string{"plain text", "12a|x", "|x"} {
		if _, err := emitted(d); err == nil {
			t.Errorf("emitted(%q) = nil error, want one", d)
		}
	}
}
