package text_test

import (
	"slices"
	"testing"

	"github.com/parleychat/parley/domain/text"
)

func TestSentences(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"English", "Up to 200,000 won. It lasts 12 months!", []string{"Up to 200,000 won.", "It lasts 12 months!"}},
		{"decimals and thousands stay whole", "Rate is 3.5% on 1,000.5 won.", []string{"Rate is 3.5% on 1,000.5 won."}},
		{"Korean", "월 20만 원입니다. 12개월 동안 받습니다.", []string{"월 20만 원입니다.", "12개월 동안 받습니다."}},
		{"closing quote stays with its sentence", `He said "yes." Then left.`, []string{`He said "yes."`, "Then left."}},
		{"full-width ends need no space", "はい。いいえ。", []string{"はい。", "いいえ。"}},
		{"single line break does not end", "a hard-wrapped\nsentence. Next", []string{"a hard-wrapped sentence.", "Next"}},
		{"blank line ends a paragraph", "Title\n\nBody text", []string{"Title", "Body text"}},
		{"fragments without words dropped", "--- \n\n *** . Real one.", []string{"Real one."}},
		{"invalid UTF-8", "a\xffb.", []string{"a\uFFFDb."}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := text.Sentences(tc.in); !slices.Equal(got, tc.want) {
				t.Errorf("Sentences(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestLanguage(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"청년 월세 지원", "ko"},
		{"Youth rent support", "en"},
		{"청년 rent support 신청", "ko"}, // 4 syllables of 15 letters: over a fifth
		{"What does 청년월세 mean in Seoul's rent policy?", "en"},
		{"What is 월세?", "ko"}, // 2 syllables of 8 letters: too short to stay English
		{"1234 !!!", ""},
		{"東京都の家賃補助", ""},
		{"", ""},
	} {
		if got := text.Language(tt.in); got != tt.want {
			t.Errorf("Language(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestIsKorean(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"청년 월세 지원은 얼마인가요?", true},
		{"How much is the youth housing allowance?", false},
		{"청년 housing 지원", true},
		{"Is 청년 the word for youth?", false}, // 2 syllables against 17 letters
		{"청년 rent support 신청", true},         // was false when Hangul counted only twice
		{"", false},
		{"2024 / 12", false},
	} {
		if got := text.IsKorean(tc.in); got != tc.want {
			t.Errorf("IsKorean(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
