package offline_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/adapters/offline"
	"github.com/parleychat/parley/domain/chat"
)

func newScripted(t *testing.T, cfg offline.ScriptedConfig) *offline.Scripted {
	t.Helper()
	s, err := offline.NewScripted(cfg)
	if err != nil {
		t.Fatalf("NewScripted: %v", err)
	}
	return s
}

// timed runs Generate and records each delta with the time since the start.
type timed struct {
	delta string
	at    time.Duration
}

func generateTimed(ctx context.Context, g chat.Generator, consumerDelay func(i int) time.Duration) ([]timed, error) {
	start := time.Now()
	var got []timed
	err := g.Generate(ctx, chat.Prompt{}, func(d string) error {
		got = append(got, timed{d, time.Since(start)})
		if consumerDelay != nil {
			time.Sleep(consumerDelay(len(got) - 1))
		}
		return nil
	})
	return got, err
}

func TestScriptedPacing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newScripted(t, offline.ScriptedConfig{Text: "one two three four five", Rate: 10})
		got, err := generateTimed(t.Context(), s, nil)
		if err != nil {
			t.Fatalf("Generate: %v", err)
		}
		want := []timed{
			{"one ", 100 * time.Millisecond},
			{"two ", 200 * time.Millisecond},
			{"three ", 300 * time.Millisecond},
			{"four ", 400 * time.Millisecond},
			{"five", 500 * time.Millisecond},
		}
		if diff := cmp.Diff(got, want, cmp.AllowUnexported(timed{})); diff != "" {
			t.Errorf("deltas mismatch (-got +want):\n%s", diff)
		}
	})
}

func TestScriptedSlowConsumerCatchesUpWithoutDrift(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newScripted(t, offline.ScriptedConfig{
			Token: func(i int) string { return fmt.Sprintf("t%d ", i) },
			Count: 5,
			Rate:  10,
		})
		// The consumer stalls for 250ms on the second token: the overdue
		// tokens come at once, then the original schedule resumes.
		got, err := generateTimed(t.Context(), s, func(i int) time.Duration {
			if i == 1 {
				return 250 * time.Millisecond
			}
			return 0
		})
		if err != nil {
			t.Fatalf("Generate: %v", err)
		}
		want := []timed{
			{"t0 ", 100 * time.Millisecond},
			{"t1 ", 200 * time.Millisecond},
			{"t2 ", 450 * time.Millisecond},
			{"t3 ", 450 * time.Millisecond},
			{"t4 ", 500 * time.Millisecond},
		}
		if diff := cmp.Diff(got, want, cmp.AllowUnexported(timed{})); diff != "" {
			t.Errorf("deltas mismatch (-got +want):\n%s", diff)
		}
	})
}

func TestScriptedStopsOnCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newScripted(t, offline.ScriptedConfig{Text: strings.Repeat("word ", 100), Rate: 2})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		done := make(chan error, 1)
		var got []timed
		go func() {
			var err error
			got, err = generateTimed(ctx, s, nil)
			done <- err
		}()
		time.Sleep(1750 * time.Millisecond) // tokens due at 0.5s, 1s and 1.5s are out
		cancel()
		synctest.Wait()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Generate = %v, want context.Canceled", err)
			}
		default:
			t.Fatal("Generate did not return as soon as the context was cancelled")
		}
		if len(got) != 3 {
			t.Errorf("emitted %d tokens before the cancel, want 3", len(got))
		}
	})
}

func TestScriptedFails(t *testing.T) {
	errModel := errors.New("model crashed")
	tests := []struct {
		name      string
		failAfter int
		want      []string
	}{
		{name: "before the first token", failAfter: 0, want: nil},
		{name: "after two tokens", failAfter: 2, want: []string{"a ", "b "}},
		{name: "after the whole answer", failAfter: 10, want: []string{"a ", "b ", "c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newScripted(t, offline.ScriptedConfig{Text: "a b c", Err: errModel, FailAfter: tt.failAfter})
			got, err := collect(t, s, t.Context(), chat.Prompt{})
			if !errors.Is(err, errModel) {
				t.Errorf("Generate = %v, want %v", err, errModel)
			}
			if diff := cmp.Diff(got, tt.want); diff != "" {
				t.Errorf("deltas mismatch (-got +want):\n%s", diff)
			}
		})
	}
}

func TestScriptedEmitErrorStops(t *testing.T) {
	s := newScripted(t, offline.ScriptedConfig{Text: "a b c d"})
	errStop := errors.New("stop")
	calls := 0
	err := s.Generate(t.Context(), chat.Prompt{}, func(string) error {
		calls++
		return errStop
	})
	if !errors.Is(err, errStop) || calls != 1 {
		t.Errorf("Generate = %v after %d emits, want %v after 1", err, calls, errStop)
	}
}

func TestScriptedName(t *testing.T) {
	if got, want := newScripted(t, offline.ScriptedConfig{}).Name(), "offline/scripted"; got != want {
		t.Errorf("Name() = %q, want %q", got, want)
	}
	if got, want := newScripted(t, offline.ScriptedConfig{Name: "fake/fast"}).Name(), "fake/fast"; got != want {
		t.Errorf("Name() = %q, want %q", got, want)
	}
}

func TestScriptedConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  offline.ScriptedConfig
		want []string
	}{
		{name: "zero value", cfg: offline.ScriptedConfig{}},
		{name: "token func", cfg: offline.ScriptedConfig{Token: func(int) string { return "x" }, Count: 3, Rate: 50}},
		{name: "failing", cfg: offline.ScriptedConfig{Text: "x", Err: errors.New("boom"), FailAfter: 1}},
		{
			name: "every problem reported",
			cfg:  offline.ScriptedConfig{Rate: -1, Count: -1, FailAfter: -1},
			want: []string{"Rate -1 must be", "Count -1 is negative", "Count -1 is set without a Token", "FailAfter -1 is negative", "FailAfter -1 is set without an Err"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkProblems(t, tt.cfg.Validate(), tt.want)
		})
	}
}

func BenchmarkScriptedUnpaced(b *testing.B) {
	s, err := offline.NewScripted(offline.ScriptedConfig{
		Token: func(int) string { return "token " },
		Count: 256,
	})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := s.Generate(context.Background(), chat.Prompt{}, func(string) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}
