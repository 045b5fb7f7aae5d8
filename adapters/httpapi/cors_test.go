package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/adapters/httpapi"
	"github.com/parleychat/parley/adapters/origins"
	"github.com/parleychat/parley/domain"
)

const (
	appOrigin  = "https://app.example"
	evilOrigin = "https://evil.example"
)

func corsFixture(t *testing.T) *fixture {
	return newFixture(t, func(c *httpapi.Config, d *httpapi.Deps) {
		c.AllowedOrigins = origins.MustParse(appOrigin)
		c.RequestsPerMinute, c.RequestBurst = 60, 2
	})
}

func TestPreflight(t *testing.T) {
	f := corsFixture(t)
	type want struct {
		status                    int
		allowOrigin, allowMethods string
		allowHeaders, maxAge      string
		allow                     string
	}
	for _, tc := range []struct {
		name, path, origin string
		want               want
	}{
		{"allowed origin", "/api/rooms", appOrigin,
			want{204, appOrigin, "GET, POST", "Authorization, Content-Type, X-Request-ID", "600", ""}},
		{"allowed origin, a room", "/api/rooms/42", appOrigin,
			want{204, appOrigin, "GET, DELETE", "Authorization, Content-Type, X-Request-ID", "600", ""}},
		{"foreign origin", "/api/rooms", evilOrigin, want{status: 403}},
		{"the server's own page", "/api/rooms/42/ticket", "", want{status: 204, allow: "POST, OPTIONS"}},
		{"no such endpoint", "/api/nope", appOrigin, want{status: 404}},
		{"dev login absent unless wired", "/api/dev/token", appOrigin, want{status: 404}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string]string{"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}
			if tc.origin != "" {
				h["Origin"] = tc.origin
			}
			r := f.do(t, request{method: "OPTIONS", path: tc.path, header: h})
			got := want{r.status, r.header.Get("Access-Control-Allow-Origin"), r.header.Get("Access-Control-Allow-Methods"),
				r.header.Get("Access-Control-Allow-Headers"), r.header.Get("Access-Control-Max-Age"), r.header.Get("Allow")}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(want{})); diff != "" {
				t.Errorf("OPTIONS %s from %q (-want +got):\n%s", tc.path, tc.origin, diff)
			}
			if c := r.header.Get("Access-Control-Allow-Credentials"); c != "" {
				t.Errorf("Access-Control-Allow-Credentials = %q; credentials are never allowed", c)
			}
		})
	}
}

// TestCORSRequests: an allowed page reads answers, errors and Retry-After
// included; a foreign page is refused before anything runs.
func TestCORSRequests(t *testing.T) {
	f := corsFixture(t)
	from := func(origin string) map[string]string { return map[string]string{"Origin": origin} }

	r := f.do(t, request{method: "POST", path: "/api/rooms", token: aliceToken, body: `{"title":"Hi"}`, header: from(appOrigin)})
	if r.status != 201 || r.header.Get("Access-Control-Allow-Origin") != appOrigin {
		t.Fatalf("POST from the allowed origin: %d, Allow-Origin %q", r.status, r.header.Get("Access-Control-Allow-Origin"))
	}
	if exp := r.header.Get("Access-Control-Expose-Headers"); !strings.Contains(exp, "Retry-After") || !strings.Contains(exp, "Location") {
		t.Errorf("Access-Control-Expose-Headers = %q, want Retry-After and Location", exp)
	}
	if v := r.header.Values("Vary"); !strings.Contains(strings.Join(v, ","), "Origin") {
		t.Errorf("Vary = %q, want Origin", v)
	}

	r = f.do(t, request{method: "POST", path: "/api/rooms", token: aliceToken, body: `{"title":"Hi"}`, header: from(evilOrigin)})
	if r.status != 403 || r.errorCode(t) != domain.EFORBIDDEN || r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("POST from a foreign origin: %d %s, Allow-Origin %q; want 403 forbidden without CORS headers", r.status, r.body, r.header.Get("Access-Control-Allow-Origin"))
	}
	if n := len(f.rooms.rooms); n != 1 {
		t.Errorf("%d rooms after the foreign POST, want 1: it must not run", n)
	}

	// Errors are readable: a 401 and a 429 carry the CORS headers.
	r = f.do(t, request{method: "GET", path: "/api/rooms", token: "wrong", header: from(appOrigin)})
	if r.status != 401 || r.header.Get("Access-Control-Allow-Origin") != appOrigin {
		t.Errorf("401: Allow-Origin %q, want %q", r.header.Get("Access-Control-Allow-Origin"), appOrigin)
	}
	for i := 0; ; i++ {
		r = f.do(t, request{method: "GET", path: "/api/rooms", token: aliceToken, header: from(appOrigin)})
		if r.status == http.StatusTooManyRequests || i == 10 {
			break
		}
	}
	if r.status != 429 || r.header.Get("Retry-After") == "" || r.header.Get("Access-Control-Allow-Origin") != appOrigin {
		t.Errorf("over the limit: %d, Retry-After %q, Allow-Origin %q; want a readable 429", r.status, r.header.Get("Retry-After"), r.header.Get("Access-Control-Allow-Origin"))
	}
}

// devIssuer mints "dev-<user>" tokens.
type devIssuer struct{}

func (devIssuer) DevToken(_ context.Context, user string) (string, time.Time, error) {
	return "dev-" + user, epoch.Add(time.Hour), nil
}

func TestDevToken(t *testing.T) {
	f := newFixture(t, func(c *httpapi.Config, d *httpapi.Deps) { d.DevTokens = devIssuer{} })
	for _, tc := range []struct {
		body       string
		wantStatus int
		wantBody   string
	}{
		{`{"user_id":" 42 "}`, 201, `{"token":"dev-42","user_id":"42","expires_at":"2025-11-24T21:47:03.512Z"}`},
		{`{"user_id":"민지"}`, 201, `{"token":"dev-민지","user_id":"민지","expires_at":"2025-11-24T21:47:03.512Z"}`},
		{`{"user_id":""}`, 400, ""},
		{`{"user_id":"a\u0000b"}`, 400, ""},
		{`{"user_id":"` + strings.Repeat("x", 65) + `"}`, 400, ""},
		{`{"user":"42"}`, 400, ""},
	} {
		r := f.do(t, request{method: "POST", path: "/api/dev/token", body: tc.body})
		if r.status != tc.wantStatus {
			t.Errorf("POST %s = %d %s, want %d", tc.body, r.status, r.body, tc.wantStatus)
			continue
		}
		if tc.wantBody != "" && strings.TrimSpace(string(r.body)) != tc.wantBody {
			t.Errorf("POST %s = %s, want %s", tc.body, r.body, tc.wantBody)
		}
		if tc.wantStatus == 400 && r.errorCode(t) != domain.EINVALID {
			t.Errorf("POST %s: code %s, want invalid", tc.body, r.errorCode(t))
		}
		if r.header.Get("Cache-Control") != "no-store" {
			t.Errorf("POST %s: Cache-Control %q, want no-store", tc.body, r.header.Get("Cache-Control"))
		}
	}
	// Without an issuer there is no such endpoint.
	g := newFixture(t, nil)
	if r := g.do(t, request{method: "POST", path: "/api/dev/token", body: `{"user_id":"42"}`}); r.status != 404 {
		t.Errorf("POST /api/dev/token without DevTokens = %d, want 404", r.status)
	}
}
