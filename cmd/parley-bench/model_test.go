package main

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/adapters/langchain"
	"github.com/parleychat/parley/domain/chat"
)

// TestModelServerStreamsThePlan: langchaingo's OpenAI client, as chatd
// uses it, receives a tagged question's planned tokens one by one, and the
// server stamps each one's emit time; other requests get the short text.
func TestModelServerStreamsThePlan(t *testing.T) {
	m, err := startModelServer(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	gen, err := langchain.NewGenerator(langchain.Config{Provider: langchain.ProviderOpenAI, BaseURL: m.url, Model: "bench-model", APIKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	p := m.plan("persisted-r1-q1", 8, time.Millisecond, 2*time.Millisecond)
	var got []string
	err = gen.Generate(t.Context(), chat.Prompt{Question: benchQuestion + " (#persisted-r1-q1)"}, func(d string) error {
		got = append(got, d)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(p.tokens, got); diff != "" {
		t.Errorf("deltas (-plan +got):\n%s", diff)
	}
	prev := p.requested.Load()
	if prev == 0 {
		t.Fatal("the request's arrival was not recorded")
	}
	for i := range p.tokens {
		at := p.emitted[i].Load()
		if at < prev {
			t.Errorf("token %d emitted at %d, before %d", i, at, prev)
		}
		prev = at
	}
	if first := p.emitted[0].Load() - p.requested.Load(); first < int64(2*time.Millisecond) {
		t.Errorf("first token %s after the request, want at least the plan's 2ms", time.Duration(first))
	}

	got = nil
	err = gen.Generate(t.Context(), chat.Prompt{Question: "<summary>\n(empty)\n</summary>"}, func(d string) error {
		got = append(got, d)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(summaryTokens, got); diff != "" {
		t.Errorf("summary deltas (-want +got):\n%s", diff)
	}
	rw, err := langchain.NewRewriter(langchain.Config{Provider: langchain.ProviderOpenAI, BaseURL: m.url, Model: "bench-model", APIKey: "k"}, langchain.RewriterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	queries, err := rw.Rewrite(t.Context(), benchQuestion+" (#persisted-r1-q2)")
	if err != nil || len(queries) == 0 {
		t.Errorf("Rewrite = %q, %v; want the queries", queries, err)
	}
	if m.answers.Load() != 1 || m.summaries.Load() != 1 || m.rewrites.Load() != 1 {
		t.Errorf("answers %d, summaries %d, rewrites %d; want 1 each", m.answers.Load(), m.summaries.Load(), m.rewrites.Load())
	}
}

func TestBenchTokens(t *testing.T) {
	a, b := benchTokens("relay-r3-q9", 200), benchTokens("relay-r3-q9", 200)
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("the same tag gave other tokens:\n%s", diff)
	}
	if strings.Join(a, "") == strings.Join(benchTokens("relay-r3-q10", 200), "") {
		t.Error("two tags gave the same answer")
	}
	for i, tok := range a {
		if n := utf8.RuneCountInString(tok); n < 3 || n > 6 {
			t.Errorf("token %d %q has %d characters, want 3 to 6", i, tok, n)
		}
	}
}
