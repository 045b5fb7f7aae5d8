package document_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/adapters/document"
	"github.com/parleychat/parley/adapters/tokens"
	"github.com/parleychat/parley/domain/rag"
)

// words counts whitespace-separated words: one token each.
type words struct{}

func (words) Count(s string) int { return len(strings.Fields(s)) }

func TestSplitterSections(t *testing.T) {
	s, err := document.NewSplitter(words{}, document.SplitterConfig{MaxTokens: 100})
	if err != nil {
		t.Fatal(err)
	}
	doc := "# Youth Rent Support\r\n\nIntro paragraph.\n\n## Who can apply\n\nAged 19 to 34.\n\n### Income\n\nAt most 60%.\n\n" +
		"## Empty\n\n## How to apply\n\n```\n# not a heading\n```\n\nOnline.\n\nSetext heading\n--------------\n\nUnder it.\n\n- item one\n- item two\n\nLast line\n"
	got, err := s.Split(doc)
	if err != nil {
		t.Fatal(err)
	}
	want := []rag.Section{
		{Text: "Intro paragraph."},
		{Heading: "Who can apply", Text: "Aged 19 to 34."},
		{Heading: "Who can apply > Income", Text: "At most 60%."},
		{Heading: "How to apply", Text: "```\n# not a heading\n```\n\nOnline."},
		{Heading: "Setext heading", Text: "Under it.\n\n- item one\n- item two\n\nLast line"},
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("sections (-got +want):\n%s", diff)
	}
}

func TestSplitterKeepsALaterTopHeading(t *testing.T) {
	s, _ := document.NewSplitter(words{}, document.SplitterConfig{})
	got, _ := s.Split("Text before.\n\n# Part one\n\nBody.\n\n## Detail\n\nMore.")
	want := []rag.Section{{Text: "Text before."}, {Heading: "Part one", Text: "Body."}, {Heading: "Part one > Detail", Text: "More."}}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("sections (-got +want):\n%s", diff)
	}
}

func TestSplitterSizesLongSections(t *testing.T) {
	s, _ := document.NewSplitter(words{}, document.SplitterConfig{MaxTokens: 6})
	doc := "## Long\n\none two three.\n\nfour five six.\n\nseven eight nine ten eleven twelve thirteen. fourteen.\n\nw1 w2 w3 w4 w5 w6 w7 w8"
	got, _ := s.Split(doc)
	want := []rag.Section{
		{Heading: "Long", Text: "one two three.\n\nfour five six."},
		{Heading: "Long", Text: "seven eight nine ten eleven twelve"},
		{Heading: "Long", Text: "thirteen. fourteen."},
		{Heading: "Long", Text: "w1 w2 w3 w4 w5 w6"},
		{Heading: "Long", Text: "w7 w8"},
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("sections (-got +want):\n%s", diff)
	}
	for _, sec := range got {
		if n := (words{}).Count(sec.Text); n > 6 {
			t.Errorf("section %q has %d tokens, over 6", sec.Text, n)
		}
	}
}

// TestSplitterSizesKoreanAndEnglishAlike: the same structure gives the
// same number of chunks in both languages, with real token counts.
func TestSplitterSizesKoreanAndEnglishAlike(t *testing.T) {
	c, err := tokens.New("")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := document.NewSplitter(c, document.SplitterConfig{})
	ko, _ := s.Split("# 청년 월세\n\n월세를 지원합니다.\n\n## 지원 대상\n\n만 19세부터 34세까지의 무주택 청년입니다.\n\n## 신청 방법\n\n주민센터에서 신청합니다.")
	en, _ := s.Split("# Youth rent\n\nRent is supported.\n\n## Who can apply\n\nYoung people aged 19 to 34 who own no home.\n\n## How to apply\n\nAt the community centre.")
	if len(ko) != 3 || len(en) != 3 {
		t.Errorf("Korean gave %d sections, English %d; want 3 each", len(ko), len(en))
	}
}

func TestNewSplitterValidates(t *testing.T) {
	if _, err := document.NewSplitter(nil, document.SplitterConfig{}); err == nil {
		t.Error("NewSplitter without a counter: nil error")
	}
	if _, err := document.NewSplitter(words{}, document.SplitterConfig{MaxTokens: -1}); err == nil {
		t.Error("NewSplitter with negative MaxTokens: nil error")
	}
}
