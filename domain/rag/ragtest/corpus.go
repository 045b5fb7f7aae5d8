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
// corpus: one section for the text between the title and the first "## "
// heading, then one for each "## " heading with the text up to the next,
// the heading's text as the section's Heading. "# " title lines are left
// out, since the Ingester indexes the title with every chunk, and empty
// sections are skipped. It stands in, in tests that may import only domain
// packages, for the production splitter in adapters/document.
type SectionSplitter struct{}

// Split returns text's sections.
func (SectionSplitter) Split(text string) ([]rag.Section, error) {
	var sections []rag.Section
	var heading string
	var cur []string
	flush := func() {
		if s := strings.TrimSpace(strings.Join(cur, "\n")); s != "" {
			sections = append(sections, rag.Section{Heading: heading, Text: s})
		}
		cur = cur[:0]
	}
	for _, line := range strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n") {
		switch {
		case strings.HasPrefix(line, "# "):
			continue
		case strings.HasPrefix(line, "## "):
			flush()
			heading = strings.TrimSpace(strings.TrimPrefix(line, "## "))
			continue
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

// Ingest brings idx in step with docs through a rag.Ingester with emb
// (nil for none) and SectionSplitter, and returns how many chunks it wrote
// (none for a document indexed already with the same chunks).
func Ingest(ctx context.Context, emb rag.Embedder, idx rag.Index, docs []Document) (int, error) {
	in := &rag.Ingester{Index: idx, Embedder: emb, Splitter: SectionSplitter{}}
	rep, err := in.Sync(ctx, RAGDocuments(docs), rag.SyncOptions{})
	return rep.Chunks, err
}

// Question kinds.
const (
	KindSame  = "same"  // a document in the question's language answers it
	KindCross = "cross" // only documents in another language answer it
	KindNone  = "none"  // no document answers it
)

// Question is an evaluation question and the documents that answer it.
type Question struct {
	ID   string `json:"id"`
	Lang string `json:"lang"`
	// Kind is KindSame (the default), KindCross or KindNone.
	Kind     string `json:"kind,omitempty"`
	Question string `json:"question"`
	// Source is the one document that answers a labelled question.
	Source string `json:"source,omitempty"`
	// Sources are every document that answers a paraphrased question.
	Sources []string `json:"sources,omitempty"`
}

// Answers returns the documents that answer q: Sources, or Source.
func (q Question) Answers() []string {
	if len(q.Sources) > 0 || q.Source == "" {
		return q.Sources
	}
	return []string{q.Source}
}

// LoadQuestions reads questions, one JSON object a line (blank lines and
// lines starting with '#' skipped), from the file name of fsys. A question
// needs a "source" or "sources" unless its kind is "none", and then must
// have neither.
func LoadQuestions(fsys fs.FS, name string) ([]Question, error) {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, fmt.Errorf("load questions: %w", err)
	}
	var qs []Question
	sc := bufio.NewScanner(bytes.NewReader(b))
	for line := 1; sc.Scan(); line++ {
		if l := strings.TrimSpace(sc.Text()); l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		var q Question
		if err := dec.Decode(&q); err != nil {
			return nil, fmt.Errorf("load questions: %s line %d: %w", name, line, err)
		}
		if q.Kind == "" {
			q.Kind = KindSame
		}
		switch {
		case strings.TrimSpace(q.Question) == "":
			return nil, fmt.Errorf("load questions: %s line %d: needs a \"question\"", name, line)
		case q.Kind != KindSame && q.Kind != KindCross && q.Kind != KindNone:
			return nil, fmt.Errorf("load questions: %s line %d: kind %q is not same, cross or none", name, line, q.Kind)
		case q.Source != "" && len(q.Sources) > 0:
			return nil, fmt.Errorf("load questions: %s line %d: give a \"source\" or \"sources\", not both", name, line)
		case (q.Kind == KindNone) != (len(q.Answers()) == 0):
			return nil, fmt.Errorf("load questions: %s line %d: needs a \"source\" or \"sources\", unless (and only if) its kind is none", name, line)
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

// Sources lists the sources of the sample's documents.
func (s Sample) Sources() []string {
	out := make([]string, len(s.Docs))
	for i, d := range s.Docs {
		out[i] = d.Source
	}
	return out
}

// Question sets of the sample corpus, by file name: the labelled
// questions, and the paraphrased and off-topic ones in a dev half that may
// be tuned on and a held-out test half (docs/corpus/README.md).
const (
	SetLabelled        = "questions.jsonl"
	SetParaphrasesDev  = "paraphrases.dev.jsonl"
	SetParaphrasesTest = "paraphrases.test.jsonl"
	SetOffTopicDev     = "offtopic.dev.jsonl"
	SetOffTopicTest    = "offtopic.test.jsonl"
)

// LoadSample reads the sample corpus and its labelled questions, and
// fails t if either does not load or a question expects a document that
// is not in the corpus.
func LoadSample(t testing.TB) Sample {
	t.Helper()
	s := Sample{Dir: CorpusDir(t)}
	var err error
	if s.Docs, err = LoadCorpus(os.DirFS(s.Dir)); err != nil {
		t.Fatal(err)
	}
	s.Questions = s.Load(t, SetLabelled)
	return s
}

// Load reads the question set name of the sample corpus and fails t if it
// does not load or a question expects a document that is not in the
// corpus.
func (s Sample) Load(t testing.TB, name string) []Question {
	t.Helper()
	qs, err := LoadQuestions(os.DirFS(s.Dir), name)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckAnswers(s.Docs, qs); err != nil {
		t.Fatal(err)
	}
	return qs
}

// CheckAnswers reports a question that expects a document not in docs.
func CheckAnswers(docs []Document, qs []Question) error {
	known := make(map[string]bool, len(docs))
	for _, d := range docs {
		known[d.Source] = true
	}
	for _, q := range qs {
		for _, src := range q.Answers() {
			if !known[src] {
				return fmt.Errorf("question %s expects %s, which is not in the corpus", q.ID, src)
			}
		}
	}
	return nil
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
