package langchain_test

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/parleychat/parley/adapters/langchain"
	"github.com/parleychat/parley/domain/rag"
)

// texts returns the sections' texts, checking they have no heading.
func texts(sections []rag.Section, err error) ([]string, error) {
	var out []string
	for _, s := range sections {
		if s.Heading != "" {
			return nil, fmt.Errorf("section %q has heading %q", s.Text, s.Heading)
		}
		out = append(out, s.Text)
	}
	return out, err
}

func TestSplitterKeepsSentencesWhole(t *testing.T) {
	sentences := []string{
		"청년 월세 특별지원은 무주택 청년에게 월 최대 20만 원을 지원하는 제도입니다.",
		"신청은 복지로 누리집이나 주민센터에서 할 수 있다.",
		"지원 기간은 최대 12개월이다.",
		"Applicants must be between 19 and 34 years old.",
		"Is income checked? Yes, household income is checked!",
	}
	var b strings.Builder
	for i := range 40 {
		b.WriteString(sentences[i%len(sentences)])
		b.WriteString(" ")
	}
	text := b.String()
	s, err := langchain.NewSplitter(langchain.SplitterConfig{ChunkSize: 200, ChunkOverlap: 60})
	if err != nil {
		t.Fatal(err)
	}
	chunks, err := texts(s.Split(text))
	if err != nil {
		t.Fatal(err)
	}
	if len(chunks) < 5 {
		t.Fatalf("%d chunks of a %d-rune text at size 200, want several", len(chunks), utf8.RuneCountInString(text))
	}
	starts := map[string]bool{}
	for _, s := range sentences {
		starts[strings.Fields(s)[0]] = true
	}
	starts["Yes,"] = true
	for i, c := range chunks {
		if n := utf8.RuneCountInString(c); n > 200 {
			t.Errorf("chunk %d has %d runes, want at most 200", i, n)
		}
		if strings.Contains(c, "\uE000") {
			t.Errorf("chunk %d contains the boundary marker", i)
		}
		if !strings.ContainsAny(c[len(c)-1:], ".?!") {
			t.Errorf("chunk %d does not end a sentence: %q", i, c)
		}
		if !starts[strings.Fields(c)[0]] {
			t.Errorf("chunk %d does not start a sentence: %q", i, c)
		}
	}
	// Overlap: each chunk after the first starts with a sentence the
	// previous one ended with.
	for i := 1; i < len(chunks); i++ {
		first := chunks[i]
		if j := strings.IndexAny(first, ".?!"); j >= 0 {
			first = first[:j+1]
		}
		if !strings.Contains(chunks[i-1], first) {
			t.Errorf("chunk %d starts with %q, which chunk %d does not hold: no overlap", i, first, i-1)
		}
	}
	// Without overlap the chunks put back together are the text.
	s, err = langchain.NewSplitter(langchain.SplitterConfig{ChunkSize: 200, ChunkOverlap: -1})
	if err != nil {
		t.Fatal(err)
	}
	chunks, err = texts(s.Split(text))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(chunks, " "), strings.TrimSpace(text); got != want {
		t.Errorf("chunks without overlap joined by spaces differ from the text:\n got %q\nwant %q", got, want)
	}
}

func TestSplitterParagraphs(t *testing.T) {
	s, err := langchain.NewSplitter(langchain.SplitterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	text := "# 제목\r\n\r\n첫 문단입니다.\n\n두 번째 문단입니다.\n\n\n"
	chunks, err := texts(s.Split(text))
	if err != nil {
		t.Fatal(err)
	}
	if want := "# 제목\n\n첫 문단입니다.\n\n두 번째 문단입니다."; len(chunks) != 1 || chunks[0] != want {
		t.Errorf("Split(short text) = %q, want [%q]", chunks, want)
	}
	if chunks, _ := s.Split(" \n\n "); len(chunks) != 0 {
		t.Errorf("Split(spaces) = %q, want none", chunks)
	}
}

func TestSplitterConfig(t *testing.T) {
	for _, cfg := range []langchain.SplitterConfig{{ChunkSize: -5}, {ChunkSize: 100, ChunkOverlap: 100}, {ChunkSize: 50}} {
		if _, err := langchain.NewSplitter(cfg); err == nil {
			t.Errorf("NewSplitter(%+v): nil error", cfg)
		}
	}
}
