package tokens_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/parleychat/parley/adapters/tokens"
)

func TestCount(t *testing.T) {
	c, err := tokens.New("")
	if err != nil {
		t.Fatal(err)
	}
	if c.Encoding() != "cl100k_base" {
		t.Errorf("default encoding %q", c.Encoding())
	}
	tests := []struct {
		text string
		want int
	}{
		{"", 0},
		{"hello world", 2},
		{"Up to 200,000 won.", 8},
		{"invalid \xff utf-8", 5},
	}
	for _, tc := range tests {
		if got := c.Count(tc.text); got != tc.want {
			t.Errorf("Count(%q) = %d, want %d", tc.text, got, tc.want)
		}
	}
	// Korean: no reference count to hand here, so check bounds: at least
	// one token per syllable in cl100k_base, at most one per byte.
	if n := c.Count("청년 월세 지원"); n < 6 || n > len("청년 월세 지원") {
		t.Errorf("Count(청년 월세 지원) = %d, want 6 to %d", n, len("청년 월세 지원"))
	}
	o, err := tokens.New("o200k_base")
	if err != nil {
		t.Fatal(err)
	}
	if got := o.Count("hello world"); got != 2 {
		t.Errorf("o200k_base Count(hello world) = %d, want 2", got)
	}
}

func TestNewRejectsUnknownEncodings(t *testing.T) {
	_, err := tokens.New("gpt2-ish")
	if err == nil || !strings.Contains(err.Error(), `encoding "gpt2-ish" is not supported: use one of cl100k_base, o200k_base`) {
		t.Errorf("New(gpt2-ish) = %v", err)
	}
}

func TestCountIsSafeForConcurrentUse(t *testing.T) {
	c, err := tokens.New("")
	if err != nil {
		t.Fatal(err)
	}
	want := c.Count("The youth housing allowance pays up to 200,000 won. 청년 월세 지원은 월 최대 20만 원입니다.")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				if got := c.Count("The youth housing allowance pays up to 200,000 won. 청년 월세 지원은 월 최대 20만 원입니다."); got != want {
					t.Errorf("goroutine %d call %d: %d tokens, want %d", i, j, got, want)
					return
				}
			}
		})
	}
	wg.Wait()
}
