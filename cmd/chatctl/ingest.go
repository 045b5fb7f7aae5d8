package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/adapters/document"
	"github.com/parleychat/parley/adapters/tokens"
	"github.com/parleychat/parley/cmd/internal/cli"
	"github.com/parleychat/parley/cmd/internal/ragenv"
	"github.com/parleychat/parley/domain/rag"
)

const ingestUsage = `usage: chatctl ingest <path>... [--prune] [--max-tokens 400] [--prefix P]

Adds Markdown (.md), plain-text (.txt) and HTML (.html) documents to the
retrieval index, or brings it up to date. A directory is searched
recursively (names starting with '.' are skipped); each document is named
by its path below the directory given, e.g. housing/youth-rent-support.md
(a file given directly is named by its file name). Unchanged documents are
recognised by their chunk IDs and cost nothing; changed ones replace their
old chunks. Documents are cut at their Markdown headings (HTML headings
count), each section at most --max-tokens tokens. PDF is not read: convert
it to text first (pdftotext -layout).

With --prune, indexed documents (under --prefix, if given) that this run
did not find are removed: give every root of the collection in one run.

Environment:
  PARLEY_QDRANT_URL      when set, index into Qdrant (its gRPC URL);
                         otherwise into Postgres at PARLEY_DATABASE_URL
  PARLEY_DATABASE_URL    Postgres URL (default the local development database)
  PARLEY_EMBEDDER        none (default: BM25 over the chunks' terms only), ollama or openai
                         (a dense embedder too, fused with BM25), or lexical (the old hashing one)
  PARLEY_EMBED_MODEL     embedding model for ollama or openai
  PARLEY_OLLAMA_URL, PARLEY_OPENAI_URL, PARLEY_OPENAI_API_KEY, PARLEY_QDRANT_API_KEY
  PARLEY_RAG_COLLECTION  collection name (default parley-terms-ko-en-1[-<embedder name>])
`

// sourceFile is one file found under the roots.
type sourceFile struct {
	path, source string
}

// skippedFile is a file not ingested, and why.
type skippedFile struct {
	path, reason string
}

func runIngest(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("ingest")
	prune := fs.Bool("prune", false, "remove indexed documents that were not found (under --prefix, if given)")
	maxTokens := fs.Int("max-tokens", document.DefaultMaxTokens, "most tokens per chunk; longer sections are cut between paragraphs, then sentences")
	fs.Func("chunk-size", "replaced by --max-tokens", func(string) error {
		return errors.New("chunks are now sized in tokens, not characters: use --max-tokens (default 400)")
	})
	fs.Func("overlap", "no longer used", func(string) error {
		return errors.New("chunks are now whole sections, without overlap: drop --overlap")
	})
	prefix := fs.String("prefix", "", "prepended to every document name, e.g. \"faq/\"; also limits --prune")
	batch := fs.Int("batch", rag.DefaultEmbedBatch, "chunks per embedding call")

	paths, err := cli.ParseInterleaved(fs, args, "chatctl ingest", ingestUsage, stdout)
	if err != nil {
		return helpOK(err)
	}
	if len(paths) == 0 {
		return cli.Usage(errors.New("ingest: name at least one file or directory"))
	}
	if *maxTokens < 16 || *batch < 1 {
		return cli.Usage(fmt.Errorf("ingest: need --max-tokens ≥ 16 and --batch ≥ 1 (got %d, %d)", *maxTokens, *batch))
	}
	cfg, err := ragenv.FromEnv(getenv)
	if err != nil {
		return cli.Usage(fmt.Errorf("ingest: %w", err))
	}
	counter, err := tokens.New("")
	if err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	splitter, err := document.NewSplitter(counter, document.SplitterConfig{MaxTokens: *maxTokens})
	if err != nil {
		return cli.Usage(fmt.Errorf("ingest: %w", err))
	}

	files, skipped, err := findDocuments(paths, *prefix)
	if err != nil {
		return err
	}
	var docs []rag.Document
	unreadable := map[string]bool{} // kept out of pruning
	for _, f := range files {
		d, err := document.Load(f.path, f.source)
		if err != nil {
			skipped = append(skipped, skippedFile{f.path, err.Error()})
			unreadable[f.source] = true
			continue
		}
		docs = append(docs, d)
	}

	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	emb, err := cfg.OpenEmbedder(ctx)
	if err != nil {
		return fmt.Errorf("ingest: embedder %s: %w", cfg.Embedder, err)
	}
	var pool *pgxpool.Pool
	if cfg.IndexKind() == "postgres" {
		if pool, err = openPool(ctx, databaseURL(getenv)); err != nil {
			return fmt.Errorf("ingest: %w", err)
		}
		defer pool.Close()
	}
	idx, closeIndex, err := cfg.OpenIndex(ctx, emb, pool, log)
	if err != nil {
		return fmt.Errorf("ingest: open the %s index: %w", cfg.IndexKind(), err)
	}
	defer closeIndex()
	collection := cfg.CollectionFor(emb)
	embName := "none"
	if emb != nil {
		embName = emb.Name()
	}
	fmt.Fprintf(stderr, "ingest: %d documents found, %d files skipped; terms %s, embedder %s, %s collection %s\n",
		len(docs), len(skipped), rag.SparseEncoding, embName, idx.Name(), collection)

	var bar *progress
	in := &rag.Ingester{Index: idx, Embedder: emb, Splitter: splitter, BatchSize: *batch, Progress: func(pr rag.Progress) {
		if bar == nil {
			bar = newProgress(stderr, "ingest", "chunks", int64(pr.Total))
		}
		bar.update(int64(pr.Done), "last "+pr.Source)
	}}
	scope := func(source string) bool { return strings.HasPrefix(source, *prefix) && !unreadable[source] }
	start := time.Now()
	rep, syncErr := in.Sync(ctx, docs, rag.SyncOptions{Prune: *prune, Scope: scope})
	if bar != nil {
		bar.finish()
	}
	printReport(stdout, rep, skipped, time.Since(start))
	if syncErr != nil {
		return fmt.Errorf("ingest stopped (run it again to finish): %w", syncErr)
	}
	return nil
}

// findDocuments lists the supported files under paths, naming each by its
// path below the root it was found in (a file given directly by its base
// name), with prefix in front.
func findDocuments(paths []string, prefix string) ([]sourceFile, []skippedFile, error) {
	var files []sourceFile
	var skipped []skippedFile
	bySource := map[string]string{}
	add := func(path, source string) error {
		if _, err := document.FormatOf(path); err != nil {
			skipped = append(skipped, skippedFile{path, strings.TrimPrefix(err.Error(), path+": ")})
			return nil
		}
		source = prefix + source
		if other, dup := bySource[source]; dup {
			if other == path {
				return nil // the same file reached through two roots
			}
			return cli.Usage(fmt.Errorf("ingest: %s and %s would both be named %q: ingest them in separate runs with different --prefix values", other, path, source))
		}
		bySource[source] = path
		files = append(files, sourceFile{path, source})
		return nil
	}
	for _, root := range paths {
		info, err := os.Stat(root)
		if err != nil {
			return nil, nil, cli.Usage(fmt.Errorf("ingest: %w", err))
		}
		if !info.IsDir() {
			if err := add(root, filepath.Base(root)); err != nil {
				return nil, nil, err
			}
			continue
		}
		err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if path != root && strings.HasPrefix(d.Name(), ".") {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if !d.Type().IsRegular() {
				return nil
			}
			rel, err := filepath.Rel(root, path)
			if err != nil {
				return err
			}
			return add(path, filepath.ToSlash(rel))
		})
		if err != nil {
			var ee *exitError
			if errors.As(err, &ee) {
				return nil, nil, err
			}
			return nil, nil, fmt.Errorf("ingest: read %s: %w", root, err)
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].source < files[j].source })
	return files, skipped, nil
}

// printReport writes the closing summary: counts, then the documents
// that changed, then the files skipped.
func printReport(w io.Writer, rep rag.Report, skipped []skippedFile, took time.Duration) {
	rate := 0.0
	if s := took.Seconds(); s > 0 {
		rate = float64(rep.Chunks) / s
	}
	fmt.Fprintf(w, "added %d, updated %d, removed %d, unchanged %d documents; %d chunks written in %s (%.0f chunks/s)\n",
		len(rep.Added), len(rep.Updated), len(rep.Removed), len(rep.Unchanged), rep.Chunks, took.Round(time.Millisecond), rate)
	if rep.Reweighed > 0 {
		fmt.Fprintf(w, "%d chunks reweighed for the collection's new average length\n", rep.Reweighed)
	}
	list := func(mark string, sources []string) {
		const most = 20
		for i, s := range sources {
			if i == most {
				fmt.Fprintf(w, "  %s ... and %d more\n", mark, len(sources)-most)
				return
			}
			fmt.Fprintf(w, "  %s %s\n", mark, s)
		}
	}
	list("+", rep.Added)
	list("~", rep.Updated)
	list("-", rep.Removed)
	if len(rep.Empty) > 0 {
		fmt.Fprintf(w, "%d documents have no text and were not indexed:\n", len(rep.Empty))
		list(" ", rep.Empty)
	}
	if len(skipped) > 0 {
		fmt.Fprintf(w, "skipped %d files:\n", len(skipped))
		for i, s := range skipped {
			if i == 20 {
				fmt.Fprintf(w, "  ... and %d more\n", len(skipped)-20)
				break
			}
			fmt.Fprintf(w, "  %s: %s\n", s.path, s.reason)
		}
	}
}
