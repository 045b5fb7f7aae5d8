package offline_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/adapters/offline"
)

func TestSplitTokens(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{in: "", want: nil},
		{in: "   ", want: []string{"   "}},
		{in: "Hello, world!", want: []string{"Hello, ", "world!"}},
		{in: "  lead and trail  ", want: []string{"  lead ", "and ", "trail  "}},
		{in: "one\n\ntwo", want: []string{"one\n\n", "two"}},
		{in: "internationalization", want: []string{"intern", "ationa", "lizati", "on"}},
		{in: "서울특별시청사입니다. 네", want: []string{"서울특별시청", "사입니다. ", "네"}},
		// A combining acute accent stays with its letter.
		{in: "abcdee\u0301f", want: []string{"abcdee\u0301", "f"}},
		// A ZWJ emoji sequence is not cut at its joiners.
		{in: "abcde👨\u200d👩\u200d👧x", want: []string{"abcde👨\u200d👩\u200d👧", "x"}},
	}
	for _, tt := range tests {
		got := offline.SplitTokens(tt.in)
		if diff := cmp.Diff(got, tt.want); diff != "" {
			t.Errorf("SplitTokens(%q) mismatch (-got +want):\n%s", tt.in, diff)
		}
	}
}

func FuzzSplitTokens(f *testing.F) {
	for _, s := range []string{"", "Hello, world!", "서울특별시청사입니다", "e\u0301\u0301\u0301\u0301\u0301\u0301\u0301x", "\xff\xfeabc"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		pieces := offline.SplitTokens(s)
		if got := strings.Join(pieces, ""); got != s {
			t.Fatalf("pieces %q concatenate to %q, want %q", pieces, got, s)
		}
		for _, p := range pieces {
			if p == "" {
				t.Fatalf("SplitTokens(%q) has an empty piece: %q", s, pieces)
			}
			if utf8.ValidString(s) && !utf8.ValidString(p) {
				t.Fatalf("SplitTokens(%q) split a rune: %q", s, pieces)
			}
		}
	})
}
