package document

import (
	"fmt"
	"regexp"
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// skipped elements contribute no text.
var skipped = map[atom.Atom]bool{
	atom.Head: true, atom.Script: true, atom.Style: true, atom.Noscript: true,
	atom.Template: true, atom.Svg: true, atom.Math: true, atom.Iframe: true,
	atom.Object: true, atom.Canvas: true, atom.Select: true, atom.Button: true,
}

// blocks start and end a paragraph.
var blocks = map[atom.Atom]bool{
	atom.Address: true, atom.Article: true, atom.Aside: true, atom.Blockquote: true,
	atom.Body: true, atom.Dd: true, atom.Details: true, atom.Dialog: true, atom.Div: true,
	atom.Dl: true, atom.Dt: true, atom.Fieldset: true, atom.Figcaption: true,
	atom.Figure: true, atom.Footer: true, atom.Form: true, atom.Header: true,
	atom.Hr: true, atom.Li: true, atom.Main: true, atom.Nav: true, atom.Ol: true,
	atom.P: true, atom.Pre: true, atom.Section: true, atom.Summary: true,
	atom.Table: true, atom.Tr: true, atom.Ul: true, atom.Caption: true,
	atom.H1: true, atom.H2: true, atom.H3: true, atom.H4: true, atom.H5: true, atom.H6: true,
}

var headingLevel = map[atom.Atom]int{atom.H1: 1, atom.H2: 2, atom.H3: 3, atom.H4: 4, atom.H5: 5, atom.H6: 6}

var (
	spaces     = regexp.MustCompile(`[ \t\f\r\n\v\x{00A0}]+`)
	blankLines = regexp.MustCompile(`\n{3,}`)
)

// htmlText returns an HTML document's title and its visible text.
func htmlText(src string) (title, text string, err error) {
	root, err := html.Parse(strings.NewReader(src))
	if err != nil {
		return "", "", fmt.Errorf("parse HTML: %w", err)
	}
	w := &htmlWriter{}
	var h1 string
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		switch n.Type {
		case html.TextNode:
			w.text(n.Data)
			return
		case html.ElementNode:
			if skipped[n.DataAtom] {
				return
			}
			if n.DataAtom == atom.H1 && h1 == "" {
				h1 = collapse(textOf(n))
			}
		}
		switch a := n.DataAtom; {
		case n.Type != html.ElementNode:
		case a == atom.Br:
			w.newline()
		case a == atom.Pre:
			w.paragraph()
			w.raw(textOf(n))
			w.paragraph()
			return
		case blocks[a]:
			w.paragraph()
			if l := headingLevel[a]; l > 0 {
				w.raw(strings.Repeat("#", l) + " ")
			}
			if a == atom.Li {
				w.raw("- ")
			}
		case a == atom.Td || a == atom.Th:
			if w.midLine() {
				w.raw(" | ")
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
		if n.Type == html.ElementNode && blocks[n.DataAtom] {
			w.paragraph()
		}
	}
	// The <title> lives in <head>, which is skipped: look for it first.
	// An SVG <title> (namespace "svg") names a drawing, not the document.
	var findTitle func(n *html.Node)
	findTitle = func(n *html.Node) {
		if n.Type == html.ElementNode && n.DataAtom == atom.Title && n.Namespace == "" && title == "" {
			title = collapse(textOf(n))
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			findTitle(c)
		}
	}
	findTitle(root)
	walk(root)
	if title == "" {
		title = h1
	}
	return title, w.String(), nil
}

func textOf(n *html.Node) string {
	var b strings.Builder
	var f func(*html.Node)
	f = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		if n.Type == html.ElementNode && skipped[n.DataAtom] {
			return
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			f(c)
		}
	}
	f(n)
	return b.String()
}

func collapse(s string) string { return strings.TrimSpace(spaces.ReplaceAllString(s, " ")) }

// htmlWriter builds text from inline runs, paragraph and line breaks.
type htmlWriter struct {
	b       strings.Builder
	pending string // a break or space not yet written
}

func (w *htmlWriter) text(s string) {
	s = spaces.ReplaceAllString(s, " ")
	if s == "" {
		return
	}
	if s == " " {
		if w.pending == "" && w.midLine() {
			w.pending = " "
		}
		return
	}
	if strings.HasPrefix(s, " ") && w.pending == "" && w.midLine() {
		w.pending = " "
	}
	trailing := strings.HasSuffix(s, " ")
	w.raw(strings.TrimSpace(s))
	if trailing {
		w.pending = " "
	}
}

// raw writes s after any pending break.
func (w *htmlWriter) raw(s string) {
	if s == "" {
		return
	}
	if w.b.Len() > 0 {
		w.b.WriteString(w.pending)
	}
	w.pending = ""
	w.b.WriteString(s)
}

// midLine reports whether text written next continues a line.
func (w *htmlWriter) midLine() bool {
	if strings.Contains(w.pending, "\n") {
		return false
	}
	s := w.b.String()
	return s != "" && !strings.HasSuffix(s, "\n") && !strings.HasSuffix(s, "# ") && !strings.HasSuffix(s, "- ")
}

func (w *htmlWriter) paragraph() { w.pending = "\n\n" }

func (w *htmlWriter) newline() {
	if w.pending != "\n\n" {
		w.pending = "\n"
	}
}

func (w *htmlWriter) String() string {
	lines := strings.Split(w.b.String(), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSpace(l)
	}
	return strings.TrimSpace(blankLines.ReplaceAllString(strings.Join(lines, "\n"), "\n\n"))
}
