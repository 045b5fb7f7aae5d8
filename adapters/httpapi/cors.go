package httpapi

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/parleychat/parley/domain"
)

// CORS: which cross-origin browser pages may call /api, and what they may
// read. The allow-list is Config.AllowedOrigins, the list the WebSocket
// gateway checks Origin against.
const (
	// corsMaxAge is how long a browser may cache a preflight's answer.
	corsMaxAge = 10 * time.Minute
	// corsAllowHeaders are the request headers a page may send.
	corsAllowHeaders = "Authorization, Content-Type, X-Request-ID"
	// corsExposeHeaders are the response headers a page may read besides
	// the CORS-safelisted ones: the limiter's Retry-After above all.
	corsExposeHeaders = "Retry-After, Location, WWW-Authenticate, X-Request-ID"
)

// corsMethods are the methods a preflight may be answered for, in the
// order Access-Control-Allow-Methods lists them.
var corsMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

var errForeignOrigin = domain.Errorf(domain.EFORBIDDEN, "this page's origin may not call the API (PARLEY_ALLOWED_ORIGINS)")

// cors admits a browser request from an allowed origin and lets its page
// read the answer, errors included: Access-Control-Allow-Origin names the
// origin (never *), and Access-Control-Allow-Credentials is never sent:
// the API authenticates with bearer tokens, not cookies, so no request
// needs credentials. A request from an origin not on the list is refused
// with 403 forbidden before anything else runs; one without Origin (not a
// browser) passes untouched.
func (s *Server) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Add("Vary", "Origin")
		if origin := r.Header.Get("Origin"); origin != "" {
			if !s.cfg.AllowedOrigins.Check(origin, r.Host) {
				writeError(w, r, errForeignOrigin)
				return
			}
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
		}
		next.ServeHTTP(w, r)
	})
}

// handlePreflight serves OPTIONS on every /api path: a CORS preflight
// from an allowed origin is answered 204 with the methods the path
// supports and the headers a page may send; from any other origin, 403
// without CORS headers, so the browser stops there. An OPTIONS without
// Origin (not a browser) gets 204 and Allow.
func (s *Server) handlePreflight() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Add("Vary", "Origin")
		h.Add("Vary", "Access-Control-Request-Method")
		h.Add("Vary", "Access-Control-Request-Headers")
		allow := strings.Join(s.methodsOf(r), ", ")
		origin := r.Header.Get("Origin")
		if origin == "" {
			h.Set("Allow", allow+", OPTIONS")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if !s.cfg.AllowedOrigins.Check(origin, r.Host) {
			writeError(w, r, errForeignOrigin)
			return
		}
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Methods", allow)
		h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
		h.Set("Access-Control-Max-Age", strconv.Itoa(int(corsMaxAge.Seconds())))
		w.WriteHeader(http.StatusNoContent)
	})
}

// methodsOf returns the methods some route serves r's path with.
func (s *Server) methodsOf(r *http.Request) []string {
	var out []string
	for _, m := range corsMethods {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "" {
			out = append(out, m)
		}
	}
	return out
}
