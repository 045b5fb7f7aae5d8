package memory_test

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/parleychat/parley/domain/memory"
)

// runes counts runes: a stricter token counter than words, for budgets.
type runes struct{}

func (runes) Count(s string) int { return utf8.RuneCountInString(s) }

func newExtractive(t *testing.T, c memory.TokenCounter, cfg memory.ExtractiveConfig) *memory.Extractive {
	t.Helper()
	e, err := memory.NewExtractive(c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestExtractiveKeepsTheMostInformativeSentences(t *testing.T) {
	tests := []struct {
		name     string
		previous string
		turns    []memory.Turn
		want     string
	}{
		{
			name: "english",
			turns: []memory.Turn{{
				Question: "Hi there. How much is the youth housing allowance in Seoul?",
				Answer: "Thanks for asking. The youth housing allowance pays up to 200,000 won a month for 12 months. " +
					"It is a good question. Let me know if you need more.",
			}},
			want: "Q: How much is the youth housing allowance in Seoul? A: The youth housing allowance pays up to 200,000 won a month for 12 months.",
		},
		{
			name:     "korean, after the previous summary",
			previous: "Q: How much is the youth housing allowance? A: Up to 200,000 won a month.",
			turns: []memory.Turn{{
				Question: "안녕하세요. 청년 월세 지원 신청 자격이 어떻게 되나요?",
				Answer:   "좋은 질문이에요. 만 19세에서 34세 사이의 무주택 청년이 월세 지원을 신청할 수 있습니다. 감사합니다.",
			}},
			want: "Q: How much is the youth housing allowance? A: Up to 200,000 won a month.\n" +
				"Q: 청년 월세 지원 신청 자격이 어떻게 되나요? A: 만 19세에서 34세 사이의 무주택 청년이 월세 지원을 신청할 수 있습니다.",
		},
		{
			name:  "an unanswered question keeps the question",
			turns: []memory.Turn{{Question: "When is the deadline?"}},
			want:  "Q: When is the deadline?",
		},
	}
	e := newExtractive(t, words{}, memory.ExtractiveConfig{MaxTokens: 200})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := e.Summarize(t.Context(), tc.previous, tc.turns)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("summary:\n%s\nwant:\n%s", got, tc.want)
			}
			again, _ := e.Summarize(t.Context(), tc.previous, tc.turns)
			if again != got {
				t.Errorf("not deterministic: %q then %q", got, again)
			}
		})
	}
}

func TestExtractiveStaysWithinItsBudget(t *testing.T) {
	const budget = 60
	e := newExtractive(t, words{}, memory.ExtractiveConfig{MaxTokens: budget})
	topics := []string{"housing allowance", "job training", "student loans", "transport passes", "health checkups", "savings accounts", "culture vouchers", "startup grants"}
	summary := ""
	for i, topic := range topics {
		var err error
		summary, err = e.Summarize(t.Context(), summary, []memory.Turn{{
			Question: "Tell me about " + topic + " for young people, please.",
			Answer:   "The " + topic + " programme gives eligible residents aged 19 to 34 support worth up to " + strings.Repeat("9", i+3) + " won. Apply online.",
		}})
		if err != nil {
			t.Fatal(err)
		}
		if n := (words{}).Count(summary); n > budget {
			t.Fatalf("after turn %d the summary has %d tokens, over %d:\n%s", i, n, budget, summary)
		}
	}
	lines := strings.Split(summary, "\n")
	if last := lines[len(lines)-1]; !strings.Contains(last, "startup grants") {
		t.Errorf("the newest turn was dropped; last line %q", last)
	}
	if strings.Contains(summary, "housing allowance") {
		t.Errorf("the oldest turn survived eight turns in a %d-token budget:\n%s", budget, summary)
	}

	// A single huge turn is cut, not dropped, and the result still fits.
	small := newExtractive(t, runes{}, memory.ExtractiveConfig{MaxTokens: 40})
	got, err := small.Summarize(t.Context(), "", []memory.Turn{{Question: strings.Repeat("very long question ", 20), Answer: strings.Repeat("long answer ", 30)}})
	if err != nil {
		t.Fatal(err)
	}
	if n := utf8.RuneCountInString(got); n > 40 || !strings.HasPrefix(got, "Q: very long") {
		t.Errorf("cut summary %q has %d runes; want at most 40, starting with the question", got, n)
	}
}

func TestExtractiveStopsWithItsContext(t *testing.T) {
	e := newExtractive(t, words{}, memory.ExtractiveConfig{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := e.Summarize(ctx, "", []memory.Turn{{Question: "q"}}); err != context.Canceled {
		t.Errorf("Summarize with a cancelled context = %v, want context.Canceled", err)
	}
	if _, err := memory.NewExtractive(nil, memory.ExtractiveConfig{MaxTokens: -1}); err == nil ||
		!strings.Contains(err.Error(), "TokenCounter is required") || !strings.Contains(err.Error(), "MaxTokens -1 is negative") {
		t.Errorf("NewExtractive(nil, -1) error = %v", err)
	}
}

func TestExtractiveCompressesOldLinesBeforeDroppingThem(t *testing.T) {
	const budget = 50
	e := newExtractive(t, words{}, memory.ExtractiveConfig{MaxTokens: budget})
	previous := strings.Join([]string{
		"Q: How much is rent support? A: Rent support pays 200,000 won monthly.",
		"Q: How much is job training? A: Job training pays 500,000 won monthly.",
		"Q: How much is transport aid? A: Transport aid refunds 53 percent.",
		"Q: How much is counselling? A: Counselling is free for 10 sessions.",
	}, "\n")
	got, err := e.Summarize(t.Context(), previous, []memory.Turn{{Question: "When is the deadline?", Answer: "Applications close on March 31. Late ones wait a year."}})
	if err != nil {
		t.Fatal(err)
	}
	if n := (words{}).Count(got); n > budget {
		t.Errorf("summary has %d tokens, over %d:\n%s", n, budget, got)
	}
	for _, fact := range []string{"200,000", "500,000", "53 percent", "10 sessions", "March 31"} {
		if !strings.Contains(got, fact) {
			t.Errorf("summary lost %q:\n%s", fact, got)
		}
	}
	lines := strings.Split(got, "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "- ") || !strings.HasPrefix(lines[4], "Q: When is the deadline? A: ") {
		t.Errorf("want the old lines compressed to their core and the newest whole:\n%s", got)
	}
}
