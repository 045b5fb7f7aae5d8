package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/parleychat/parley/domain"
)

// handleLivez serves GET /livez: 200 {"status":"ok"} while the process
// serves at all.
func handleLivez() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

// maxCheckText bounds the failure text of one readiness check.
const maxCheckText = 200

// handleReadyz serves GET /readyz: it runs every check at once under
// timeout and answers 200 {"status":"ok","checks":{name:"ok"}} when all
// pass, else 503 {"status":"unavailable", "checks":{...}} with each failed
// check's error text.
func handleReadyz(checks map[string]Checker, timeout time.Duration) http.Handler {
	type response struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		out := response{Status: "ok", Checks: make(map[string]string, len(checks))}
		var mu sync.Mutex
		var wg sync.WaitGroup
		var failed []string
		for name, c := range checks {
			wg.Go(func() {
				text := "ok"
				if err := c.Check(ctx); err != nil {
					text = checkText(ctx, err, timeout)
				}
				mu.Lock()
				defer mu.Unlock()
				out.Checks[name] = text
				if text != "ok" {
					failed = append(failed, name+": "+text)
				}
			})
		}
		wg.Wait()
		if len(failed) > 0 {
			sort.Strings(failed)
			out.Status = "unavailable"
			if ri := infoFrom(r.Context()); ri != nil {
				ri.err = fmt.Errorf("not ready: %s", strings.Join(failed, "; "))
			}
			writeJSON(w, http.StatusServiceUnavailable, out)
			return
		}
		writeJSON(w, http.StatusOK, out)
	})
}

// checkText is the short text /readyz shows for a failed check.
func checkText(ctx context.Context, err error, timeout time.Duration) string {
	if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
		return fmt.Sprintf("no answer within %s", timeout)
	}
	text := err.Error()
	if text == "" || text == "ok" {
		text = "failed"
	}
	if len(text) > maxCheckText {
		text = strings.ToValidUTF8(text[:maxCheckText], "") + "…"
	}
	return text
}

// handleMetrics serves GET /metrics from m, 404 without one.
func handleMetrics(m Metrics) http.Handler {
	if m == nil {
		return notFound()
	}
	return m.Handler()
}

// handleDocument serves the file name of fsys as YAML, 404 without it.
func handleDocument(fsys fs.FS, name string) http.Handler {
	if fsys == nil {
		return notFound()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := fs.ReadFile(fsys, name)
		if errors.Is(err, fs.ErrNotExist) {
			writeError(w, r, domain.Errorf(domain.ENOTFOUND, "%s is not available", name))
			return
		}
		if err != nil {
			writeError(w, r, fmt.Errorf("read %s: %w", name, err))
			return
		}
		w.Header().Set("Content-Type", "application/yaml")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(b)
	})
}

// orNotFound is h, or a 404 when h is nil (the WebSocket gateway is not
// wired).
func orNotFound(h http.Handler) http.Handler {
	if h == nil {
		return notFound()
	}
	return h
}

func notFound() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, domain.Errorf(domain.ENOTFOUND, "no such endpoint"))
	})
}
