package httpapi_test

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/adapters/httpapi"
	"github.com/parleychat/parley/adapters/prom"
	"github.com/parleychat/parley/docs"
)

func TestLivez(t *testing.T) {
	f := newFixture(t, nil)
	resp := f.do(t, request{method: "GET", path: "/livez"})
	if diff := cmp.Diff(map[string]any{"status": "ok"}, resp.json(t)); diff != "" || resp.status != 200 {
		t.Errorf("status %d; body (-want +got):\n%s", resp.status, diff)
	}
}

func TestReadyz(t *testing.T) {
	ok := httpapi.CheckerFunc(func(context.Context) error { return nil })
	down := httpapi.CheckerFunc(func(context.Context) error { return errors.New("connection refused") })
	hangs := httpapi.CheckerFunc(func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	tests := []struct {
		name       string
		checks     map[string]httpapi.Checker
		degraded   map[string]httpapi.Checker
		wantStatus int
		want       map[string]any
	}{
		{"no checks", nil, nil, 200, map[string]any{"status": "ok", "checks": map[string]any{}}},
		{"all pass", map[string]httpapi.Checker{"event_store": ok, "redis": ok}, nil, 200,
			map[string]any{"status": "ok", "checks": map[string]any{"event_store": "ok", "redis": "ok"}}},
		{"one fails", map[string]httpapi.Checker{"event_store": ok, "redis": down}, nil, 503,
			map[string]any{"status": "unavailable", "checks": map[string]any{"event_store": "ok", "redis": "connection refused"}}},
		{"one hangs", map[string]httpapi.Checker{"event_store": hangs, "redis": ok}, nil, 503,
			map[string]any{"status": "unavailable", "checks": map[string]any{"event_store": "no answer within 50ms", "redis": "ok"}}},
		{"a degraded check fails", map[string]httpapi.Checker{"event_store": ok}, map[string]httpapi.Checker{"redis": down}, 200,
			map[string]any{"status": "degraded", "checks": map[string]any{"event_store": "ok", "redis": "connection refused"}}},
		{"a degraded and a critical check fail", map[string]httpapi.Checker{"event_store": down}, map[string]httpapi.Checker{"redis": hangs}, 503,
			map[string]any{"status": "unavailable", "checks": map[string]any{"event_store": "connection refused", "redis": "no answer within 50ms"}}},
		{"degraded checks pass", map[string]httpapi.Checker{"event_store": ok}, map[string]httpapi.Checker{"redis": ok, "projections": ok}, 200,
			map[string]any{"status": "ok", "checks": map[string]any{"event_store": "ok", "redis": "ok", "projections": "ok"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, func(c *httpapi.Config, d *httpapi.Deps) {
				c.ReadinessTimeout = 50 * time.Millisecond
				d.Checks, d.DegradedChecks = tc.checks, tc.degraded
			})
			resp := f.do(t, request{method: "GET", path: "/readyz"})
			if diff := cmp.Diff(tc.want, resp.json(t)); diff != "" || resp.status != tc.wantStatus {
				t.Errorf("status %d, want %d; body (-want +got):\n%s", resp.status, tc.wantStatus, diff)
			}
		})
	}
}

func TestDocuments(t *testing.T) {
	f := newFixture(t, nil)
	for _, name := range []string{"openapi.yaml", "asyncapi.yaml"} {
		want, err := fs.ReadFile(docs.FS, name)
		if err != nil {
			t.Fatal(err)
		}
		resp := f.do(t, request{method: "GET", path: "/" + name})
		if resp.status != 200 || string(resp.body) != string(want) {
			t.Errorf("GET /%s: status %d, %d bytes; want 200 and the %d bytes of docs.FS", name, resp.status, len(resp.body), len(want))
		}
		if ct := resp.header.Get("Content-Type"); ct != "application/yaml" {
			t.Errorf("GET /%s: Content-Type %q, want application/yaml", name, ct)
		}
	}
}

func TestDocumentsMissing(t *testing.T) {
	tests := []struct {
		name string
		docs fs.FS
	}{
		{"no docs", nil},
		{"no asyncapi", fstest.MapFS{"openapi.yaml": {Data: []byte("openapi: 3.1.0\n")}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, func(_ *httpapi.Config, d *httpapi.Deps) { d.Docs = tc.docs })
			resp := f.do(t, request{method: "GET", path: "/asyncapi.yaml"})
			if resp.status != 404 || resp.errorCode(t) != "not_found" {
				t.Errorf("status %d, body %s; want 404 not_found", resp.status, resp.body)
			}
		})
	}
}

// TestMetricsEndToEnd serves /metrics from prom.Metrics and checks that
// requests are counted by route pattern, not by path.
func TestMetricsEndToEnd(t *testing.T) {
	m := prom.New()
	f := newFixture(t, func(_ *httpapi.Config, d *httpapi.Deps) { d.Metrics = m })
	f.do(t, request{method: "GET", path: "/api/rooms/7", token: aliceToken})
	f.do(t, request{method: "GET", path: "/api/rooms/8", token: aliceToken})
	f.do(t, request{method: "GET", path: "/no/such/thing"})
	f.srv.Close() // every request observed

	f = newFixture(t, func(_ *httpapi.Config, d *httpapi.Deps) { d.Metrics = m })
	resp := f.do(t, request{method: "GET", path: "/metrics"})
	if resp.status != 200 || !strings.HasPrefix(resp.header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: status %d, Content-Type %q", resp.status, resp.header.Get("Content-Type"))
	}
	for _, want := range []string{
		`parley_http_requests_total{route="GET /api/rooms/{id}",status="404"} 2`,
		`parley_http_requests_total{route="unmatched",status="404"} 1`,
	} {
		if !strings.Contains(string(resp.body), want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestMetricsObserved(t *testing.T) {
	f := newFixture(t, nil)
	mine := f.rooms.add("alice", "Mine")
	f.do(t, request{method: "GET", path: "/api/rooms/" + itoa(mine), token: aliceToken})
	f.do(t, request{method: "POST", path: "/api/rooms", body: `{"title":"x"}`})
	f.do(t, request{method: "GET", path: "/ws/chat/9/"})
	f.do(t, request{method: "PUT", path: "/livez"})
	f.srv.Close()
	want := []string{"GET /api/rooms/{id} OK", "POST /api/rooms Unauthorized", "GET /ws/chat/{room_id}/{$} OK", "unmatched Method Not Allowed"}
	if diff := cmp.Diff(want, f.metrics.seen()); diff != "" {
		t.Errorf("observed (-want +got):\n%s", diff)
	}
	if resp := newFixture(t, func(_ *httpapi.Config, d *httpapi.Deps) { d.Metrics = nil }).do(t, request{method: "GET", path: "/metrics"}); resp.status != 404 {
		t.Errorf("GET /metrics without Metrics: status %d, want 404", resp.status)
	}
}
