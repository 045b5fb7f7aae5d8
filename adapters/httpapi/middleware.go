package httpapi

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/parleychat/parley/domain"
)

// requestInfo is what the middleware learns about a request as it passes
// through the layers, for its access-log line.
type requestInfo struct {
	id     string
	route  string // the matched pattern; "" when none matched
	userID string
	err    error // the error the request was answered with
}

type infoKey struct{}

func infoFrom(ctx context.Context) *requestInfo {
	ri, _ := ctx.Value(infoKey{}).(*requestInfo)
	return ri
}

// RequestID returns the id of the request ctx belongs to ("" outside a
// request the Server handles), for log lines that go with its access-log
// line. It is also sent to the client as the X-Request-ID header.
func RequestID(ctx context.Context) string {
	if ri := infoFrom(ctx); ri != nil {
		return ri.id
	}
	return ""
}

// unmatchedRoute labels requests no route matched.
const unmatchedRoute = "unmatched"

// observe is the outermost middleware: it gives the request an id, turns
// a panic into a 500, and writes the access-log line and the metrics once
// the request is done.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ri := &requestInfo{id: requestID(r.Header.Get("X-Request-ID"))}
		w.Header().Set("X-Request-ID", ri.id)
		sw := &statusWriter{ResponseWriter: w}
		r = r.WithContext(context.WithValue(r.Context(), infoKey{}, ri))
		var stack []byte
		abort := false
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler { // net/http's way to drop the connection
					abort = true
					ri.err = fmt.Errorf("handler aborted the response")
				} else {
					stack = debug.Stack()
					ri.err = fmt.Errorf("panic: %v", v)
					if sw.status == 0 && !sw.hijacked {
						writeError(sw, r, ri.err)
					} else {
						abort = true // part of an answer is out: cut it off rather than end it as if complete
					}
				}
			}
			s.logAccess(r, ri, sw, time.Since(start), stack)
			if abort {
				panic(http.ErrAbortHandler)
			}
		}()
		next.ServeHTTP(sw, r)
	})
}

// logAccess writes the request's one access-log line and its metrics.
// It logs the path only: the query may hold a ?token= or ?ticket=.
func (s *Server) logAccess(r *http.Request, ri *requestInfo, sw *statusWriter, d time.Duration, stack []byte) {
	status := sw.status
	if status == 0 {
		status = http.StatusOK // the handler wrote nothing
	}
	route := ri.route
	if route == "" {
		route = unmatchedRoute
	}
	if s.deps.Metrics != nil {
		s.deps.Metrics.ObserveHTTP(route, status, d)
	}
	attrs := make([]slog.Attr, 0, 10)
	attrs = append(attrs,
		slog.String("request_id", ri.id),
		slog.String("method", r.Method),
		slog.String("route", route),
		slog.String("path", r.URL.Path),
		slog.Int("status", status),
		slog.Duration("duration", d),
	)
	if ri.userID != "" {
		attrs = append(attrs, slog.String("user_id", ri.userID))
	}
	if ri.err != nil {
		attrs = append(attrs, slog.String("error", ri.err.Error()))
	}
	if stack != nil {
		attrs = append(attrs, slog.String("stack", string(stack)))
	}
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	s.log.LogAttrs(r.Context(), level, "http request", attrs...)
}

// requestID returns the client's X-Request-ID when it is a plausible id
// (from a proxy in front of us), else a new random one.
func requestID(given string) string {
	if len(given) > 0 && len(given) <= 64 && strings.Trim(given, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == "" {
		return given
	}
	return rand.Text()
}

// routed records the pattern that matched, for the access log and the
// metrics. ServeMux sets r.Pattern on the request it hands its handler.
func routed(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ri := infoFrom(r.Context()); ri != nil {
			ri.route = r.Pattern
		}
		next.ServeHTTP(w, r)
	})
}

// noStore keeps caches from storing answers: they are per-user or live.
func noStore(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

type principalKey struct{}

// principalFrom returns the principal authenticate stored in ctx.
func principalFrom(ctx context.Context) domain.Principal {
	p, _ := ctx.Value(principalKey{}).(domain.Principal)
	return p
}

var (
	errNoToken   = domain.Errorf(domain.EUNAUTHORIZED, "missing bearer token")
	errNoSubject = domain.Errorf(domain.EUNAUTHORIZED, "token names no user")
)

// authenticate requires "Authorization: Bearer <token>" and a token the
// verifier accepts, and puts the principal in the request's context.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearerToken(r.Header.Get("Authorization"))
		if !ok {
			w.Header().Set("WWW-Authenticate", "Bearer")
			writeError(w, r, errNoToken)
			return
		}
		p, err := s.deps.Verifier.Verify(r.Context(), token)
		if err == nil && p.UserID == "" {
			err = errNoSubject
		}
		if err != nil {
			if domain.ErrorCode(err) == domain.EUNAUTHORIZED {
				w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			}
			writeError(w, r, err)
			return
		}
		if ri := infoFrom(r.Context()); ri != nil {
			ri.userID = p.UserID
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

// bearerToken returns the token of an "Authorization: Bearer <token>"
// header value; the scheme is case-insensitive (RFC 7235).
func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// unmatched answers a request no route matched as the mux would, 404, or
// 405 with the mux's Allow header, but with a JSON error body. A 405 has
// code invalid: the closed set has no code of its own for it.
func unmatched(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, _ := mux.Handler(r)
		probe := &headerProbe{header: http.Header{}}
		h.ServeHTTP(probe, r)
		if probe.status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", probe.header.Get("Allow"))
			msg := fmt.Sprintf("method %s not allowed here", r.Method)
			writeErrorStatus(w, r, http.StatusMethodNotAllowed, domain.EINVALID, msg, domain.Errorf(domain.EINVALID, "%s", msg))
			return
		}
		writeError(w, r, domain.Errorf(domain.ENOTFOUND, "no such endpoint"))
	})
}

// headerProbe is a ResponseWriter that keeps the header and status and
// drops the body.
type headerProbe struct {
	header http.Header
	status int
}

func (p *headerProbe) Header() http.Header { return p.header }
func (p *headerProbe) WriteHeader(status int) {
	if p.status == 0 {
		p.status = status
	}
}
func (p *headerProbe) Write(b []byte) (int, error) {
	p.WriteHeader(http.StatusOK)
	return len(b), nil
}

// statusWriter records the status a handler answers with. It passes
// Flush and Hijack through (gorilla/websocket asserts http.Hijacker
// directly) and unwraps for http.ResponseController.
type statusWriter struct {
	http.ResponseWriter
	status   int
	hijacked bool
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 && (status >= 200 || status == http.StatusSwitchingProtocols) {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush implements http.Flusher.
func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack implements http.Hijacker; a hijacked request is logged as 101.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.hijacked = true
		if w.status == 0 {
			w.status = http.StatusSwitchingProtocols
		}
	}
	return conn, brw, err
}

// Unwrap returns the wrapped ResponseWriter, for http.ResponseController.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
