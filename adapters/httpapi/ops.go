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
// pass; 200 {"status":"degraded",...} when only checks of degraded fail
// (the server serves, worse: a load balancer keeps it); else 503
// {"status":"unavailable",...}. A failed check shows its error's text.
func handleReadyz(checks, degraded map[string]Checker, timeout time.Duration) http.Handler {
	type response struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		out := response{Status: "ok", Checks: make(map[string]string, len(checks)+len(degraded))}
		var mu sync.Mutex
		var wg sync.WaitGroup
		var failed, worse []string
		run := func(name string, c Checker, critical bool) {
			wg.Go(func() {
				text := "ok"
				if err := c.Check(ctx); err != nil {
					text = checkText(ctx, err, timeout)
				}
				mu.Lock()
				defer mu.Unlock()
				out.Checks[name] = text
				switch {
				case text == "ok":
				case critical:
					failed = append(failed, name+": "+text)
				default:
					worse = append(worse, name+": "+text)
				}
			})
		}
		for name, c := range checks {
			run(name, c, true)
		}
		for name, c := range degraded {
			run(name, c, false)
		}
		wg.Wait()
		status := http.StatusOK
		switch {
		case len(failed) > 0:
			out.Status, status = "unavailable", http.StatusServiceUnavailable
		case len(worse) > 0:
			out.Status = "degraded"
		}
		if problems := append(failed, worse...); len(problems) > 0 {
			sort.Strings(problems)
			if ri := infoFrom(r.Context()); ri != nil {
				ri.err = fmt.Errorf("%s: %s", out.Status, strings.Join(problems, "; "))
			}
		}
		writeJSON(w, status, out)
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
