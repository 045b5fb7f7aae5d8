package rag

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/text"
)

// DefaultEmbedBatch is Ingester.BatchSize's default.
const DefaultEmbedBatch = 64

// Document is one text to ingest.
type Document struct {
	// Source names the document in the index, e.g. its path below the
	// ingested root. Required and unique within a Sync.
	Source string
	// Title is copied into every chunk and indexed with its text
	// (IndexText).
	Title string
	// Text is split into chunks.
	Text string
	// Metadata is copied into every chunk. Unless it holds "lang", each
	// chunk gets the "lang" text.Language finds in its text (if any).
	Metadata map[string]string
}

// Section is one piece of a document as a Splitter cuts it.
type Section struct {
	// Heading is the heading path of the part of the document the piece
	// comes from, joined by SectionSeparator; "" before the first heading
	// or in a document without headings.
	Heading string
	// Text is the piece's text, without the heading lines.
	Text string
}

// Splitter cuts a document's text into chunk-sized sections, in order.
type Splitter interface {
	Split(text string) ([]Section, error)
}

// Progress tells how far a Sync is: Done of Total chunks are embedded
// and written; Source is the document just written.
type Progress struct {
	Done, Total int
	Source      string
}

// SyncOptions adjust a Sync. The zero value adds and updates and removes
// nothing.
type SyncOptions struct {
	// Prune removes indexed sources that are not among the documents and
	// are in Scope.
	Prune bool
	// Scope limits pruning to the sources for which it returns true; nil
	// means every source in the index.
	Scope func(source string) bool
}

// Report says what a Sync did, by source, each list sorted.
type Report struct {
	Added     []string // new documents
	Updated   []string // documents whose chunks changed, replaced
	Removed   []string // pruned, or now empty and so removed
	Unchanged []string // same chunk IDs as indexed: nothing written
	Empty     []string // documents with no text, not indexed
	Chunks    int      // chunks embedded and written
	// Reweighed is how many chunks the index rewrote because the
	// collection's statistics moved (Reweigher).
	Reweighed int
}

// Ingester keeps an Index in step with a set of documents: Sync splits
// each document, compares its chunk IDs with the index's, and encodes and
// writes only documents that are new or changed. Because chunk IDs are
// derived from source, position and content, an unchanged document is
// recognised without encoding it, and re-ingesting it writes nothing.
//
// Every chunk gets its term counts (TermCounts of IndexText), and a dense
// vector when an Embedder is set.
type Ingester struct {
	Index Index
	// Embedder, if set, gives every chunk a dense vector too; the index's
	// collection must have its dimension.
	Embedder Embedder
	Splitter Splitter
	// BatchSize is the most texts per Embed call; 0 means
	// DefaultEmbedBatch. Small documents share calls.
	BatchSize int
	// Progress, if set, is called after each document is written, from the
	// goroutine running Sync.
	Progress func(Progress)
}

// planned is a document with its chunks and what to do with it.
type planned struct {
	doc     Document
	chunks  []Chunk
	replace bool // the source is indexed with other chunks
}

// Sync brings the index in step with docs, as described on Ingester. On
// error it returns what it had done so far with the error; running it
// again finishes the job.
func (in *Ingester) Sync(ctx context.Context, docs []Document, opts SyncOptions) (Report, error) {
	var rep Report
	if in.Index == nil || in.Splitter == nil {
		return rep, fmt.Errorf("ingest: Ingester needs an Index and a Splitter")
	}
	batch := in.BatchSize
	if batch <= 0 {
		batch = DefaultEmbedBatch
	}
	existing, err := in.Index.Sources(ctx)
	if err != nil {
		return rep, fmt.Errorf("ingest: list indexed sources: %w", err)
	}
	seen := make(map[string]bool, len(docs))
	var todo []planned
	var drop []string // indexed sources to delete
	total := 0
	for _, d := range docs {
		if d.Source == "" {
			return rep, domain.Errorf(domain.EINVALID, "ingest: a document has no source (title %q)", d.Title)
		}
		if seen[d.Source] {
			return rep, domain.Errorf(domain.EINVALID, "ingest: two documents have source %q", d.Source)
		}
		seen[d.Source] = true
		chunks, err := in.chunk(d)
		if err != nil {
			return rep, err
		}
		old, indexed := existing[d.Source]
		switch {
		case len(chunks) == 0:
			rep.Empty = append(rep.Empty, d.Source)
			if indexed {
				drop = append(drop, d.Source)
			}
		case indexed && sameIDs(old, chunks):
			rep.Unchanged = append(rep.Unchanged, d.Source)
		default:
			todo = append(todo, planned{doc: d, chunks: chunks, replace: indexed})
			total += len(chunks)
		}
	}
	if opts.Prune {
		for src := range existing {
			if !seen[src] && (opts.Scope == nil || opts.Scope(src)) {
				drop = append(drop, src)
			}
		}
	}
	// Each Report list is sorted once, where it is built: Unchanged and
	// Empty here, Added and Updated by following todo's order, Removed by
	// following drop's.
	sort.Strings(rep.Unchanged)
	sort.Strings(rep.Empty)
	sort.Slice(todo, func(i, j int) bool { return todo[i].doc.Source < todo[j].doc.Source })

	for start := 0; start < len(todo); {
		// A group of whole documents holding about batch chunks.
		end, n := start, 0
		for end < len(todo) && (n == 0 || n+len(todo[end].chunks) <= batch) {
			n += len(todo[end].chunks)
			end++
		}
		group := todo[start:end]
		vectors, err := in.encode(ctx, group, batch)
		if err != nil {
			return rep, err
		}
		for _, p := range group {
			vs := vectors[:len(p.chunks)]
			vectors = vectors[len(p.chunks):]
			if err := in.write(ctx, p, vs); err != nil {
				return rep, err
			}
			if p.replace {
				rep.Updated = append(rep.Updated, p.doc.Source)
			} else {
				rep.Added = append(rep.Added, p.doc.Source)
			}
			rep.Chunks += len(p.chunks)
			if in.Progress != nil {
				in.Progress(Progress{Done: rep.Chunks, Total: total, Source: p.doc.Source})
			}
		}
		start = end
	}
	sort.Strings(drop)
	for _, src := range drop {
		if err := in.Index.DeleteSource(ctx, src); err != nil {
			return rep, fmt.Errorf("ingest: remove %s: %w", src, err)
		}
		rep.Removed = append(rep.Removed, src)
	}
	if r, ok := in.Index.(Reweigher); ok && rep.Chunks+len(rep.Removed) > 0 {
		n, err := r.Reweigh(ctx)
		rep.Reweighed = n
		if err != nil {
			return rep, fmt.Errorf("ingest: reweigh chunks for the collection's new statistics: %w", err)
		}
	}
	return rep, nil
}

// chunk splits d into chunks with IDs, titles and metadata.
func (in *Ingester) chunk(d Document) ([]Chunk, error) {
	sections, err := in.Splitter.Split(d.Text)
	if err != nil {
		return nil, fmt.Errorf("ingest: split %s: %w", d.Source, err)
	}
	chunks := make([]Chunk, 0, len(sections))
	for _, s := range sections {
		meta := maps.Clone(d.Metadata)
		set := func(k, v string) {
			if meta == nil {
				meta = map[string]string{}
			}
			meta[k] = v
		}
		if _, ok := meta["lang"]; !ok {
			if lang := text.Language(s.Text); lang != "" {
				set("lang", lang)
			}
		}
		if s.Heading != "" {
			set(MetaSection, s.Heading)
		}
		chunks = append(chunks, NewChunk(d.Source, d.Title, len(chunks), s.Text, meta))
	}
	return chunks, nil
}

// encode returns the vectors of every chunk of group, in order: term
// counts, and dense vectors from calls of at most batch texts when there
// is an Embedder.
func (in *Ingester) encode(ctx context.Context, group []planned, batch int) ([]Vectors, error) {
	var texts []string
	for _, p := range group {
		for _, c := range p.chunks {
			texts = append(texts, IndexText(c))
		}
	}
	out := make([]Vectors, len(texts))
	for i, t := range texts {
		out[i].Sparse = TermCounts(t)
	}
	if in.Embedder == nil {
		return out, nil
	}
	for start := 0; start < len(texts); start += batch {
		end := min(start+batch, len(texts))
		vs, err := in.Embedder.Embed(ctx, texts[start:end])
		if err != nil {
			return nil, fmt.Errorf("ingest: embed chunks of %s with %s: %w", group[0].doc.Source, in.Embedder.Name(), err)
		}
		if len(vs) != end-start {
			return nil, fmt.Errorf("ingest: embedder %s returned %d vectors for %d texts", in.Embedder.Name(), len(vs), end-start)
		}
		for i, v := range vs {
			out[start+i].Dense = v
		}
	}
	return out, nil
}

// write stores one planned document: replacing its old chunks if it had
// any, atomically where the index can.
func (in *Ingester) write(ctx context.Context, p planned, vectors []Vectors) error {
	src := p.doc.Source
	if p.replace {
		if r, ok := in.Index.(SourceReplacer); ok {
			if err := r.ReplaceSource(ctx, src, p.chunks, vectors); err != nil {
				return fmt.Errorf("ingest: replace %s: %w", src, err)
			}
			return nil
		}
		if err := in.Index.DeleteSource(ctx, src); err != nil {
			return fmt.Errorf("ingest: replace %s: delete old chunks: %w", src, err)
		}
	}
	if err := in.Index.Upsert(ctx, p.chunks, vectors); err != nil {
		return fmt.Errorf("ingest: write %s: %w", src, err)
	}
	return nil
}

func sameIDs(old []string, chunks []Chunk) bool {
	if len(old) != len(chunks) {
		return false
	}
	want := make([]string, len(chunks))
	for i, c := range chunks {
		want[i] = c.ID
	}
	sort.Strings(want)
	have := slices.Clone(old)
	sort.Strings(have)
	return slices.Equal(have, want)
}
