package ragtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parleychat/parley/domain/rag"
)

// Document is one document of a corpus.
type Document struct {
	Source string // its path in the corpus, slash-separated, e.g. "housing/youth-rent-support.ko.md"
	Title  string // the text of its first line, a "# Title" heading
	Lang   string // "ko" or "en" from a ".ko.md" or ".en.md" name; "" otherwise
	Topic  string // its folder, e.g. "housing"; "" at the corpus root
	Text   string // the whole file
}

// LoadCorpus reads every Markdown document (*.md) of fsys except README.md
// files, in lexical order. Each must start with a "# Title" line.
func LoadCorpus(fsys fs.FS) ([]Document, error) {
	var docs []Document
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(p) != ".md" || strings.EqualFold(path.Base(p), "README.md") {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		text := strings.ReplaceAll(string(b), "\r\n", "\n")
		first, _, _ := strings.Cut(text, "\n")
		title, ok := strings.CutPrefix(first, "# ")
		if !ok || strings.TrimSpace(title) == "" {
			return fmt.Errorf("corpus document %s: the first line must be a \"# Title\" heading, found %q", p, first)
		}
		doc := Document{Source: p, Title: strings.TrimSpace(title), Text: text}
		if dir := path.Dir(p); dir != "." {
			doc.Topic, _, _ = strings.Cut(dir, "/")
		}
		switch {
		case strings.HasSuffix(p, ".ko.md"):
			doc.Lang = "ko"
		case strings.HasSuffix(p, ".en.md"):
			doc.Lang = "en"
		}
		docs = append(docs, doc)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load corpus: %w", err)
	}
	if len(docs) == 0 {
		return nil, errors.New("load corpus: no Markdown documents found")
	}
	return docs, nil
}

// SectionSplitter is a rag.Splitter for Markdown written like the sample
// corpus: one chunk per section, the text between the title and the first
// "## " heading, then each "## " heading with the text up to the next.
// "# " title lines are left out, since the Ingester embeds the title with
// every chunk, and empty sections are skipped. It stands in, in tests that
// may import only domain packages, for the production splitter in
// adapters/langchain.
type SectionSplitter struct{}

// Split returns text's sections.
func (SectionSplitter) Split(text string) ([]string, error) {
	var sections, cur []string
	flush := func() {
		if s := strings.TrimSpace(strings.Join(cur, "\n")); s != "" {
			sections = append(sections, s)
		}
		cur = cur[:0]
	}
	for _, line := range strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n") {
		switch {
		case strings.HasPrefix(line, "# "):
			continue
		case strings.HasPrefix(line, "## "):
			flush()
		}
		cur = append(cur, line)
	}
	flush()
	return sections, nil
}

// RAGDocuments is docs as ragtest reads them, for an Ingester: each one's
// source, title and text, with its "lang" and "topic" as metadata when
// known.
func RAGDocuments(docs []Document) []rag.Document {
	out := make([]rag.Document, len(docs))
	for i, doc := range docs {
		meta := map[string]string{}
		if doc.Lang != "" {
			meta["lang"] = doc.Lang
		}
		if doc.Topic != "" {
			meta["topic"] = doc.Topic
		}
		out[i] = rag.Document{Source: doc.Source, Title: doc.Title, Text: doc.Text, Metadata: meta}
	}
	return out
}

// Ingest brings idx in step with docs through a rag.Ingester with emb and
// SectionSplitter, and returns how many chunks it wrote (none for a
// document indexed already with the same chunks).
func Ingest(ctx context.Context, emb rag.Embedder, idx rag.Index, docs []Document) (int, error) {
	in := &rag.Ingester{Index: idx, Embedder: emb, Splitter: SectionSplitter{}}
	rep, err := in.Sync(ctx, RAGDocuments(docs), rag.SyncOptions{})
	return rep.Chunks, err
}

// Question is a labelled question: Source is the document that answers it.
type Question struct {
	ID       string `json:"id"`
	Lang     string `json:"lang"`
	Question string `json:"question"`
	Source   string `json:"source"`
}

// LoadQuestions reads labelled questions, one JSON object a line (blank
// lines skipped), from the file name of fsys.
func LoadQuestions(fsys fs.FS, name string) ([]Question, error) {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, fmt.Errorf("load questions: %w", err)
	}
	var qs []Question
	sc := bufio.NewScanner(bytes.NewReader(b))
	for line := 1; sc.Scan(); line++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		var q Question
		if err := dec.Decode(&q); err != nil {
			return nil, fmt.Errorf("load questions: %s line %d: %w", name, line, err)
		}
		if strings.TrimSpace(q.Question) == "" || q.Source == "" {
			return nil, fmt.Errorf("load questions: %s line %d: needs a \"question\" and a \"source\"", name, line)
		}
		qs = append(qs, q)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("load questions: %s: %w", name, err)
	}
	return qs, nil
}

// Sample is the sample corpus, docs/corpus, and its labelled questions.
type Sample struct {
	Dir       string // the corpus's directory
	Docs      []Document
	Questions []Question
}

// LoadSample reads the sample corpus and its questions.jsonl, and fails t
// if either does not load or a question expects a document that is not in
// the corpus.
func LoadSample(t testing.TB) Sample {
	t.Helper()
	s := Sample{Dir: CorpusDir(t)}
	fsys := os.DirFS(s.Dir)
	var err error
	if s.Docs, err = LoadCorpus(fsys); err != nil {
		t.Fatal(err)
	}
	if s.Questions, err = LoadQuestions(fsys, "questions.jsonl"); err != nil {
		t.Fatal(err)
	}
	known := make(map[string]bool, len(s.Docs))
	for _, d := range s.Docs {
		known[d.Source] = true
	}
	for _, q := range s.Questions {
		if !known[q.Source] {
			t.Fatalf("question %s expects %s, which is not in the corpus", q.ID, q.Source)
		}
	}
	return s
}

// CorpusDir returns the sample corpus's directory, docs/corpus at the root
// of the module the test runs in.
func CorpusDir(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "docs", "corpus")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("ragtest: no go.mod above the test's directory, so no docs/corpus")
		}
		dir = parent
	}
}
