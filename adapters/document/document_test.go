package document

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestHTML(t *testing.T) {
	src := `<!doctype html><html><head><title> 청년 월세
	지원 </title><style>p{color:red}</style><script>var x = "<p>no</p>";</script></head>
<body>
<nav><a href="/">Home</a></nav>
<h1>청년 월세 <em>특별</em>지원</h1>
<p>월 최대 <b>20만 원</b>을
   지원합니다.<br>신청은 복지로에서.</p>
<ul><li>만 19~34세</li><li>무주택자</li></ul>
<table><tr><th>항목</th><th>금액</th></tr><tr><td>월세</td><td>20만 원</td></tr></table>
<pre>code
  block</pre>
<noscript>enable JS</noscript><template><p>hidden</p></template>
<p>a&amp;b &lt;tag&gt;</p>
</body></html>`
	title, text, err := htmlText(src)
	if err != nil {
		t.Fatal(err)
	}
	if title != "청년 월세 지원" {
		t.Errorf("title = %q, want the <title> collapsed", title)
	}
	want := strings.Join([]string{
		"Home",
		"# 청년 월세 특별지원",
		"월 최대 20만 원을 지원합니다.\n신청은 복지로에서.",
		"- 만 19~34세",
		"- 무주택자",
		"항목 | 금액",
		"월세 | 20만 원",
		"code\nblock",
		"a&b <tag>",
	}, "\n\n")
	if diff := cmp.Diff(want, text); diff != "" {
		t.Errorf("text (-want +got):\n%s", diff)
	}

	title, _, _ = htmlText(`<body><h1>Only <i>heading</i></h1><p>x</p></body>`)
	if title != "Only heading" {
		t.Errorf("title without <title> = %q, want the first h1", title)
	}
	title, _, _ = htmlText(`<body><svg><title>icon</title></svg><h1>Heading</h1></body>`)
	if title != "Heading" {
		t.Errorf("title with an SVG <title> = %q, want the first h1: an SVG title names the drawing", title)
	}
}

func TestMarkdownTitle(t *testing.T) {
	for _, tt := range []struct{ src, title, text string }{
		{"intro\n\n## 청년 월세 지원 ##\n\nbody", "청년 월세 지원", ""},
		{"```\n# not a heading\n```\n# Real\n", "Real", ""},
		{"Setext title\n===\n\nbody", "Setext title", ""},
		{"---\ntitle: \"From front matter\"\ntags: [a]\n---\n# Heading\n", "From front matter", "# Heading\n"},
		{"no heading at all", "", ""},
	} {
		title, text := markdown(tt.src)
		if title != tt.title {
			t.Errorf("markdown(%q) title = %q, want %q", tt.src, title, tt.title)
		}
		if tt.text != "" && text != tt.text {
			t.Errorf("markdown(%q) text = %q, want %q", tt.src, text, tt.text)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	d, err := Load(write("rent.md", "\uFEFF# 월세\r\n\r\n본문"), "housing/rent.md")
	if err != nil {
		t.Fatal(err)
	}
	if d.Source != "housing/rent.md" || d.Title != "월세" || d.Text != "# 월세\n\n본문" ||
		d.Metadata["topic"] != "housing" || d.Metadata["format"] != "markdown" {
		t.Errorf("Load(markdown) = %+v", d)
	}
	d, err = Load(write("notes.txt", "plain"), "notes.txt")
	if err != nil || d.Title != "notes" || d.Metadata["topic"] != "" {
		t.Errorf("Load(text) = %+v, %v; want title notes, no topic", d, err)
	}
	if _, err := Load(write("euc.txt", "\xc3\xbb\xb3\xe2"), "euc.txt"); err == nil || !strings.Contains(err.Error(), "not UTF-8") {
		t.Errorf("Load(EUC-KR bytes) = %v, want a not-UTF-8 error", err)
	}
	var unsupported *UnsupportedError
	if _, err := Load(write("a.pdf", "%PDF"), "a.pdf"); !errors.As(err, &unsupported) || !strings.Contains(err.Error(), "pdftotext") {
		t.Errorf("Load(pdf) = %v, want an UnsupportedError suggesting pdftotext", err)
	}
	for name, want := range map[string]Format{"a.MD": Markdown, "b.markdown": Markdown, "c.htm": HTML, "d.HTML": HTML, "e.txt": Text} {
		if got, err := FormatOf(name); got != want || err != nil {
			t.Errorf("FormatOf(%q) = %q, %v; want %q", name, got, err, want)
		}
	}
	for _, name := range []string{"x.docx", "Makefile"} {
		if _, err := FormatOf(name); !errors.As(err, &unsupported) {
			t.Errorf("FormatOf(%q) = %v, want an UnsupportedError", name, err)
		}
	}
}
