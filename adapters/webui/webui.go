package webui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"sort"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// ContentSecurityPolicy is sent with every answer of the handler. The page
// loads scripts, styles and images only from this server, connects only to
// it ('self' covers its ws: and wss: URLs), cannot be framed, and must go
// through Trusted Types for every HTML sink, of which it creates none: an
// innerHTML assignment throws.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; " +
	"require-trusted-types-for 'script'; trusted-types 'none'"

// Cache lifetimes: the page is revalidated on every load (it names the
// current assets); assets are immutable under their versioned path.
const (
	pageCacheControl  = "no-cache"
	assetCacheControl = "public, max-age=31536000, immutable"
)

// Placeholders index.html carries, filled in once by New.
const (
	assetsPlaceholder   = "{{assets}}"
	devLoginPlaceholder = "{{dev_login}}"
)

// Config configures the page.
type Config struct {
	// DevLogin offers the development login, which asks POST
	// /api/dev/token for a token. Set it exactly when the server runs on
	// the public development secret (and so serves that endpoint).
	DevLogin bool
}

// Handler serves GET / (the page) and GET /web/<version>/<file> (its
// assets). Create it with New.
type Handler struct {
	version string
	page    []byte
	assets  map[string][]byte // by path under static/, "js/app.js"
}

// New reads the embedded files and renders the page for cfg.
func New(cfg Config) (*Handler, error) {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		return nil, fmt.Errorf("webui: %w", err)
	}
	h := &Handler{assets: map[string][]byte{}}
	var names []string
	err = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(sub, p)
		if err != nil {
			return err
		}
		h.assets[p] = b
		names = append(names, p)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("webui: read the embedded page: %w", err)
	}
	// The version covers every file, the page included.
	sum := sha256.New()
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(sum, "%s\x00%d\x00", n, len(h.assets[n]))
		sum.Write(h.assets[n])
	}
	index, ok := h.assets["index.html"]
	if !ok {
		return nil, fmt.Errorf("webui: static/index.html is missing")
	}
	delete(h.assets, "index.html")
	h.version = hex.EncodeToString(sum.Sum(nil))[:16]
	dev := "false"
	if cfg.DevLogin {
		dev = "true"
	}
	page := bytes.ReplaceAll(index, []byte(assetsPlaceholder), []byte("/web/"+h.version))
	h.page = bytes.ReplaceAll(page, []byte(devLoginPlaceholder), []byte(dev))
	return h, nil
}

// Version is the assets' version: their path prefix is /web/<Version>/.
func (h *Handler) Version() string { return h.version }

// ServeHTTP serves the page and its assets; anything else is 404.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", ContentSecurityPolicy)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hd.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if r.URL.Path == "/" {
		hd.Set("Cache-Control", pageCacheControl)
		hd.Set("Content-Type", "text/html; charset=utf-8")
		hd.Set("ETag", `"`+h.version+`"`)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(h.page))
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/web/"+h.version+"/")
	b, found := h.assets[rest]
	if !ok || !found {
		// An old version's asset too: serving today's file under
		// yesterday's immutable URL would poison caches.
		hd.Set("Cache-Control", "no-store")
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	hd.Set("Cache-Control", assetCacheControl)
	hd.Set("Content-Type", contentType(rest))
	hd.Set("ETag", `"`+h.version+`"`)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
}

// contentType names the type of each kind of file the page is made of.
func contentType(name string) string {
	switch path.Ext(name) {
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".json":
		return "application/json"
	}
	return "application/octet-stream"
}

// Files returns the embedded files by path under static/ ("index.html",
// "js/app.js"), unrendered, for tests that inspect the sources.
func Files() map[string][]byte {
	out := map[string][]byte{}
	_ = fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := fs.ReadFile(static, p)
			out[strings.TrimPrefix(p, "static/")] = b
		}
		return nil
	})
	return out
}
