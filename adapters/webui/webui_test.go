package webui_test

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/parleychat/parley/adapters/webui"
)

func get(t *testing.T, h http.Handler, path string, header map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest("GET", path, nil)
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestHeaders(t *testing.T) {
	h, err := webui.New(webui.Config{})
	if err != nil {
		t.Fatal(err)
	}
	asset := "/web/" + h.Version() + "/js/app.js"
	for _, tc := range []struct {
		path, status, contentType, cache string
	}{
		{"/", "200", "text/html; charset=utf-8", "no-cache"},
		{asset, "200", "text/javascript; charset=utf-8", "public, max-age=31536000, immutable"},
		{"/web/" + h.Version() + "/style.css", "200", "text/css; charset=utf-8", "public, max-age=31536000, immutable"},
		{"/web/" + h.Version() + "/icon.svg", "200", "image/svg+xml", "public, max-age=31536000, immutable"},
		{"/web/0123456789abcdef/js/app.js", "404", "", "no-store"}, // another build's asset
		{"/web/" + h.Version() + "/js/nope.js", "404", "", "no-store"},
		{"/web/" + h.Version() + "/index.html", "404", "", "no-store"}, // the page only at /
	} {
		w := get(t, h, tc.path, nil)
		got := []string{http.StatusText(w.Code), w.Header().Get("Cache-Control")}
		if tc.contentType != "" {
			got = append(got, w.Header().Get("Content-Type"))
		}
		want := []string{http.StatusText(map[string]int{"200": 200, "404": 404}[tc.status]), tc.cache}
		if tc.contentType != "" {
			want = append(want, tc.contentType)
		}
		if !slices.Equal(got, want) {
			t.Errorf("GET %s: %v, want %v", tc.path, got, want)
		}
		for k, v := range map[string]string{"X-Content-Type-Options": "nosniff", "Content-Security-Policy": webui.ContentSecurityPolicy, "X-Frame-Options": "DENY"} {
			if got := w.Header().Get(k); got != v {
				t.Errorf("GET %s: %s = %q, want %q", tc.path, k, got, v)
			}
		}
	}
	// The page is revalidated: an unchanged build answers 304.
	etag := get(t, h, "/", nil).Header().Get("ETag")
	if w := get(t, h, "/", map[string]string{"If-None-Match": etag}); w.Code != http.StatusNotModified || etag == "" {
		t.Errorf("GET / with If-None-Match %q: %d, want 304", etag, w.Code)
	}
}

func TestPolicy(t *testing.T) {
	csp := webui.ContentSecurityPolicy
	for _, want := range []string{"script-src 'self'", "require-trusted-types-for 'script'", "trusted-types 'none'", "frame-ancestors 'none'", "default-src 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("the CSP %q lacks %s", csp, want)
		}
	}
	for _, bad := range []string{"unsafe-inline", "unsafe-eval", "*", "data:", "http:", "https:"} {
		if strings.Contains(csp, bad) {
			t.Errorf("the CSP %q allows %s", csp, bad)
		}
	}
}

func TestDevLoginMeta(t *testing.T) {
	for _, dev := range []bool{false, true} {
		h, err := webui.New(webui.Config{DevLogin: dev})
		if err != nil {
			t.Fatal(err)
		}
		body := get(t, h, "/", nil).Body.String()
		want := `<meta name="parley-dev-login" content="false">`
		if dev {
			want = `<meta name="parley-dev-login" content="true">`
		}
		if !strings.Contains(body, want) || strings.Contains(body, "{{") {
			t.Errorf("DevLogin %v: the page lacks %s or keeps a placeholder", dev, want)
		}
		if !strings.Contains(body, `src="/web/`+h.Version()+`/js/app.js"`) {
			t.Errorf("the page does not load its versioned app.js")
		}
	}
}

// TestSources checks what the browser would refuse or what would let text
// become HTML: inline scripts, handlers and styles in the page; HTML sinks
// and eval in the scripts; imports of files that are not there; and UI text
// missing in one language.
func TestSources(t *testing.T) {
	files := webui.Files()
	page := string(files["index.html"])
	for _, tag := range regexp.MustCompile(`<script[^>]*>`).FindAllString(page, -1) {
		if !strings.Contains(tag, ` src="`) || !strings.Contains(tag, `type="module"`) {
			t.Errorf("index.html has %s: every script is a module loaded from this server", tag)
		}
	}
	for _, re := range []string{`<script[^>]*>[^<]`, `\son[a-z]+\s*=`, `\sstyle\s*=`, `javascript:`} {
		if m := regexp.MustCompile(re).FindString(page); m != "" {
			t.Errorf("index.html has %q (%s): the CSP forbids inline script, handlers and styles", m, re)
		}
	}
	sinks := regexp.MustCompile(`\.(innerHTML|outerHTML|insertAdjacentHTML)\b|document\.write|\beval\(|new Function\(|setTimeout\(\s*["'\x60]|srcdoc`)
	imports := regexp.MustCompile(`from\s+"\./([\w.]+)"`)
	for name, b := range files {
		if !strings.HasSuffix(name, ".js") {
			continue
		}
		src := string(b)
		if m := sinks.FindString(src); m != "" {
			t.Errorf("%s uses %q: the page builds DOM nodes and text only", name, m)
		}
		for _, m := range imports.FindAllStringSubmatch(src, -1) {
			if _, ok := files["js/"+m[1]]; !ok {
				t.Errorf("%s imports ./%s, which is not embedded", name, m[1])
			}
		}
	}
	i18n := string(files["js/i18n.js"])
	keys := func(lang string) []string {
		start := strings.Index(i18n, "const "+lang+" = {")
		end := strings.Index(i18n[start:], "\n};")
		var out []string
		for _, m := range regexp.MustCompile(`(?m)(?:^|[{,]\s*)("[\w.]+"|\w+):\s`).FindAllStringSubmatch(i18n[start:start+end], -1) {
			out = append(out, strings.Trim(m[1], `"`))
		}
		slices.Sort(out)
		return out
	}
	en, ko := keys("en"), keys("ko")
	if len(en) < 50 || !slices.Equal(en, ko) {
		t.Errorf("UI text keys differ between English (%d) and Korean (%d):\nen %v\nko %v", len(en), len(ko), en, ko)
	}
	used := regexp.MustCompile(`\bt\("([\w.]+)"`).FindAllStringSubmatch(string(files["js/app.js"]), -1)
	used = append(used, regexp.MustCompile(`data-i18n(?:-placeholder)?="([\w.]+)"`).FindAllStringSubmatch(page, -1)...)
	for _, m := range used {
		if strings.HasSuffix(m[1], ".") {
			continue // a prefix: t("status." + status)
		}
		if _, found := slices.BinarySearch(en, m[1]); !found {
			t.Errorf("UI text %q is used but not defined", m[1])
		}
	}
}
