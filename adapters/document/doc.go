// Package document reads files into rag.Documents for ingestion:
// Markdown (.md, .markdown), plain text (.txt, .text) and HTML (.html,
// .htm). Text must be UTF-8 (a byte-order mark is dropped).
//
// Markdown is kept as written, its title taken from YAML front matter
// ("title:"), else the first heading; the front matter itself is not
// indexed. HTML is parsed with golang.org/x/net/html: scripts, styles,
// templates and the head are dropped, block elements become paragraphs,
// headings keep Markdown-style '#' marks, list items '-' and table cells
// are separated by " | "; the title is <title>, else the first <h1>.
// Plain text has its file name as title.
//
// PDF is not supported: the pure-Go PDF readers available either extract
// text from ordinary documents only partly (missing spaces, CID fonts as
// used by most Korean PDFs come out garbled) or are not maintained.
// Convert PDFs to text first (for example pdftotext -layout) and ingest
// the .txt files.
package document
