package document

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/parleychat/parley/domain/rag"
)

// Format is a supported kind of file.
type Format string

// Supported formats.
const (
	Markdown Format = "markdown"
	Text     Format = "text"
	HTML     Format = "html"
)

// UnsupportedError says why a file is not ingested.
type UnsupportedError struct {
	Name   string
	Reason string
}

func (e *UnsupportedError) Error() string { return e.Name + ": " + e.Reason }

// FormatOf returns the format of a file by its extension, or an
// *UnsupportedError.
func FormatOf(name string) (Format, error) {
	switch ext := strings.ToLower(filepath.Ext(name)); ext {
	case ".md", ".markdown":
		return Markdown, nil
	case ".txt", ".text":
		return Text, nil
	case ".html", ".htm":
		return HTML, nil
	case ".pdf":
		return "", &UnsupportedError{name, "PDF is not supported: convert it to text first (e.g. pdftotext -layout) and ingest the .txt"}
	case "":
		return "", &UnsupportedError{name, "no file extension: name it .md, .txt or .html"}
	default:
		return "", &UnsupportedError{name, fmt.Sprintf("%s files are not supported (only .md, .txt, .html)", ext)}
	}
}

// Load reads the file at path as the document named source (its path
// below the ingested root, with forward slashes).
func Load(filePath, source string) (rag.Document, error) {
	f, err := FormatOf(filePath)
	if err != nil {
		return rag.Document{}, err
	}
	b, err := os.ReadFile(filePath)
	if err != nil {
		return rag.Document{}, fmt.Errorf("read %s: %w", filePath, err)
	}
	d, err := Parse(f, source, b)
	if err != nil {
		return rag.Document{}, fmt.Errorf("%s: %w", filePath, err)
	}
	return d, nil
}

// LoadAll reads the documents named sources (slash-separated paths below
// root), each named by its path, as `chatctl ingest root` names them.
func LoadAll(root string, sources []string) ([]rag.Document, error) {
	docs := make([]rag.Document, len(sources))
	for i, src := range sources {
		d, err := Load(filepath.Join(root, filepath.FromSlash(src)), src)
		if err != nil {
			return nil, err
		}
		docs[i] = d
	}
	return docs, nil
}

// Parse turns content in format f into the document named source. Its
// metadata holds "format" and, when source has a directory, "topic": the
// first directory (e.g. "housing" for "housing/youth-rent-support.md").
func Parse(f Format, source string, content []byte) (rag.Document, error) {
	content = bytes.TrimPrefix(content, []byte("\uFEFF"))
	if !utf8.Valid(content) {
		return rag.Document{}, fmt.Errorf("not UTF-8 text: convert it (e.g. iconv -f EUC-KR -t UTF-8)")
	}
	text := strings.ReplaceAll(string(content), "\r\n", "\n")
	name := strings.TrimSuffix(path.Base(source), path.Ext(source))
	d := rag.Document{Source: source, Metadata: map[string]string{"format": string(f)}}
	if dir, _, ok := strings.Cut(source, "/"); ok && dir != "" {
		d.Metadata["topic"] = dir
	}
	switch f {
	case Markdown:
		d.Title, d.Text = markdown(text)
	case Text:
		d.Text = text
	case HTML:
		var err error
		if d.Title, d.Text, err = htmlText(text); err != nil {
			return rag.Document{}, err
		}
	default:
		return rag.Document{}, fmt.Errorf("unknown format %q", f)
	}
	if d.Title == "" {
		d.Title = name
	}
	return d, nil
}

var (
	atxHeading = regexp.MustCompile(`^ {0,3}#{1,6}[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$`)
	setextH1   = regexp.MustCompile(`^ {0,3}=+[ \t]*$`)
	fence      = regexp.MustCompile("^ {0,3}(```|~~~)")
)

// markdown returns the title and the text without front matter.
func markdown(text string) (title, body string) {
	if rest, ok := strings.CutPrefix(text, "---\n"); ok {
		if front, after, ok := strings.Cut(rest, "\n---\n"); ok {
			for _, line := range strings.Split(front, "\n") {
				if v, ok := strings.CutPrefix(line, "title:"); ok {
					title = strings.Trim(strings.TrimSpace(v), `"'`)
				}
			}
			text = after
		}
	}
	if title != "" {
		return title, text
	}
	lines := strings.Split(text, "\n")
	inFence := false
	for i, line := range lines {
		if fence.MatchString(line) {
			inFence = !inFence
			continue
		}
		if inFence {
			continue
		}
		if m := atxHeading.FindStringSubmatch(line); m != nil {
			return strings.TrimSpace(m[1]), text
		}
		if i+1 < len(lines) && strings.TrimSpace(line) != "" && setextH1.MatchString(lines[i+1]) {
			return strings.TrimSpace(line), text
		}
	}
	return "", text
}
