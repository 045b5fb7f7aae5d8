package jwtauth_test

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/parleychat/parley/adapters/jwtauth"
	"github.com/parleychat/parley/domain"
)

// jwksServer is an identity provider's JWK Set endpoint whose keys a test
// can change, and which can be told to hang.
type jwksServer struct {
	srv  *httptest.Server
	done chan struct{}

	mu       sync.Mutex
	body     []byte
	hang     bool
	requests int
}

func newJWKSServer(t *testing.T, keys ...jwkset.JWKMarshal) *jwksServer {
	t.Helper()
	s := &jwksServer{done: make(chan struct{})}
	s.serve(t, keys...)
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests++
		body, hang := s.body, s.hang
		s.mu.Unlock()
		if hang {
			select {
			case <-r.Context().Done():
			case <-s.done:
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.srv.Close)
	t.Cleanup(func() { close(s.done) }) // runs first: releases hanging handlers
	return s
}

// serve makes the server publish keys from now on.
func (s *jwksServer) serve(t *testing.T, keys ...jwkset.JWKMarshal) {
	t.Helper()
	if keys == nil {
		keys = []jwkset.JWKMarshal{}
	}
	body, err := json.Marshal(jwkset.JWKSMarshal{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.body = body
	s.mu.Unlock()
}

func (s *jwksServer) setHang(hang bool) {
	s.mu.Lock()
	s.hang = hang
	s.mu.Unlock()
}

func (s *jwksServer) requestCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// publicJWK returns the public JWK of a signing key.
func publicJWK(t *testing.T, pub any, kid string, alg jwkset.ALG) jwkset.JWKMarshal {
	t.Helper()
	jwk, err := jwkset.NewJWKFromKey(pub, jwkset.JWKOptions{
		Metadata: jwkset.JWKMetadataOptions{KID: kid, ALG: alg, USE: jwkset.UseSig},
	})
	if err != nil {
		t.Fatalf("JWK %s: %v", kid, err)
	}
	return jwk.Marshal()
}

func jwksConfig(url string) jwtauth.Config {
	return jwtauth.Config{
		JWKSURL: url,
		Now:     fixedNow,
		Logger:  slog.New(slog.DiscardHandler),
	}
}

func TestVerifyJWKS(t *testing.T) {
	rsa1, ec1, stranger := rsaKey(t), ecKey(t), rsaKey(t)
	srv := newJWKSServer(t,
		publicJWK(t, &rsa1.PublicKey, "rsa-1", jwkset.AlgRS256),
		publicJWK(t, &ec1.PublicKey, "ec-1", jwkset.AlgES256),
	)
	v, err := jwtauth.New(t.Context(), jwksConfig(srv.srv.URL))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&rsa1.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	exp := now.Add(5 * time.Minute)
	kid := func(k string) map[string]any { return map[string]any{"kid": k} }

	for _, tc := range []struct {
		name    string
		token   string
		want    domain.Principal
		wantErr string
	}{
		{name: "RS256", token: sign(t, jwt.SigningMethodRS256, rsa1, oidc("u-1"), kid("rsa-1")),
			want: domain.Principal{UserID: "u-1", ExpiresAt: exp}},
		{name: "RS256 with a simplejwt user_id but no sub", token: sign(t, jwt.SigningMethodRS256, rsa1, access("u-1"), kid("rsa-1")),
			wantErr: "token has no user id"},
		{name: "ES256", token: sign(t, jwt.SigningMethodES256, ec1, with(oidc(7), "roles", "auditor"), kid("ec-1")),
			want: domain.Principal{UserID: "7", Roles: []string{"auditor"}, ExpiresAt: exp}},
		{name: "RS256 without kid tries every key", token: sign(t, jwt.SigningMethodRS256, rsa1, oidc("u-1"), nil),
			want: domain.Principal{UserID: "u-1", ExpiresAt: exp}},
		{name: "RS256 signed by a stranger's key", token: sign(t, jwt.SigningMethodRS256, stranger, oidc("u-1"), kid("rsa-1")),
			wantErr: "signature invalid"},
		{name: "RS256 naming the EC key", token: sign(t, jwt.SigningMethodRS256, rsa1, oidc("u-1"), kid("ec-1")),
			wantErr: "signing key not found"},
		{name: "expired RS256", token: sign(t, jwt.SigningMethodRS256, rsa1, with(oidc("u-1"), "exp", now.Add(-time.Hour).Unix()), kid("rsa-1")),
			wantErr: "token expired"},
		{name: "refresh ES256", token: sign(t, jwt.SigningMethodES256, ec1, with(oidc(7), "token_type", "refresh"), kid("ec-1")),
			wantErr: "token is a refresh token"},
		{name: "alg confusion: HS256 keyed with the RSA public key", token: sign(t, jwt.SigningMethodHS256, pubPEM, oidc("u-1"), kid("rsa-1")),
			wantErr: "algorithm HS256 not allowed"},
		{name: "alg none", token: sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, oidc("u-1"), kid("rsa-1")),
			wantErr: "algorithm none not allowed"},
		{name: "ES384 not allowed", token: sign(t, jwt.SigningMethodES256, ec1, oidc("u-1"), map[string]any{"kid": "ec-1", "alg": "ES384"}),
			wantErr: "algorithm ES384 not allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := v.Verify(t.Context(), tc.token)
			checkVerify(t, tc.token, got, err, tc.want, tc.wantErr)
		})
	}
}

// TestJWKSUnknownKIDIsBounded: a token whose kid is unknown costs at most
// one refresh per rate-limit period, and Verify gives up within
// JWKSUnknownKIDWait even when the identity provider hangs.
func TestJWKSUnknownKIDIsBounded(t *testing.T) {
	key := rsaKey(t)
	srv := newJWKSServer(t, publicJWK(t, &key.PublicKey, "rsa-1", jwkset.AlgRS256))
	cfg := jwksConfig(srv.srv.URL)
	cfg.JWKSUnknownKIDWait = 300 * time.Millisecond
	cfg.JWKSRefreshRateLimit = time.Hour
	v, err := jwtauth.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	const bound = 2 * time.Second // JWKSUnknownKIDWait plus generous slack for -race

	// The provider hangs: the refresh the unknown kid causes times out.
	srv.setHang(true)
	before := srv.requestCount()
	token := sign(t, jwt.SigningMethodRS256, key, oidc(1), map[string]any{"kid": "unknown-1"})
	start := time.Now()
	got, err := v.Verify(t.Context(), token)
	if elapsed := time.Since(start); elapsed > bound {
		t.Errorf("Verify with an unknown kid and a hanging provider took %v, want under %v", elapsed, bound)
	}
	checkVerify(t, token, got, err, domain.Principal{}, "signing key not found")
	if n := srv.requestCount() - before; n != 1 {
		t.Errorf("unknown kid caused %d JWK Set requests, want 1", n)
	}

	// The rate limit is spent: another unknown kid fails without a request.
	srv.setHang(false)
	before = srv.requestCount()
	token = sign(t, jwt.SigningMethodRS256, key, oidc(1), map[string]any{"kid": "unknown-2"})
	start = time.Now()
	got, err = v.Verify(t.Context(), token)
	if elapsed := time.Since(start); elapsed > bound {
		t.Errorf("rate-limited Verify took %v, want under %v", elapsed, bound)
	}
	checkVerify(t, token, got, err, domain.Principal{}, "signing key not found")
	if n := srv.requestCount() - before; n != 0 {
		t.Errorf("rate-limited unknown kid caused %d JWK Set requests, want 0", n)
	}

	// Known keys keep working throughout.
	token = sign(t, jwt.SigningMethodRS256, key, oidc(1), map[string]any{"kid": "rsa-1"})
	got, err = v.Verify(t.Context(), token)
	checkVerify(t, token, got, err, domain.Principal{UserID: "1", ExpiresAt: now.Add(5 * time.Minute)}, "")
}

// TestJWKSRotation: when the provider starts signing with a new key, the
// first token that names it makes the Verifier fetch the set again; the
// retired key is forgotten.
func TestJWKSRotation(t *testing.T) {
	oldKey, newKey := rsaKey(t), ecKey(t)
	srv := newJWKSServer(t, publicJWK(t, &oldKey.PublicKey, "2025-05", jwkset.AlgRS256))
	v, err := jwtauth.New(t.Context(), jwksConfig(srv.srv.URL))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	want := domain.Principal{UserID: "42", ExpiresAt: now.Add(5 * time.Minute)}
	oldToken := sign(t, jwt.SigningMethodRS256, oldKey, oidc(42), map[string]any{"kid": "2025-05"})
	got, err := v.Verify(t.Context(), oldToken)
	checkVerify(t, oldToken, got, err, want, "")

	srv.serve(t, publicJWK(t, &newKey.PublicKey, "2025-06", jwkset.AlgES256))
	newToken := sign(t, jwt.SigningMethodES256, newKey, oidc(42), map[string]any{"kid": "2025-06"})
	got, err = v.Verify(t.Context(), newToken)
	checkVerify(t, newToken, got, err, want, "")

	got, err = v.Verify(t.Context(), oldToken)
	checkVerify(t, oldToken, got, err, domain.Principal{}, "signing key not found")
}

// TestJWKSBackgroundRefresh: with no token asking, the periodic refresh
// alone picks up a new key.
func TestJWKSBackgroundRefresh(t *testing.T) {
	oldKey, newKey := rsaKey(t), rsaKey(t)
	srv := newJWKSServer(t, publicJWK(t, &oldKey.PublicKey, "old", jwkset.AlgRS256))
	cfg := jwksConfig(srv.srv.URL)
	cfg.JWKSRefreshInterval = 20 * time.Millisecond
	cfg.JWKSRefreshRateLimit = time.Hour
	v, err := jwtauth.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	// Spend the unknown-kid refresh, so only the periodic one can help.
	spent := sign(t, jwt.SigningMethodRS256, newKey, oidc(1), map[string]any{"kid": "spent"})
	if _, err := v.Verify(t.Context(), spent); err == nil {
		t.Fatal("Verify with an unpublished kid succeeded")
	}

	srv.serve(t, publicJWK(t, &newKey.PublicKey, "new", jwkset.AlgRS256))
	token := sign(t, jwt.SigningMethodRS256, newKey, oidc(1), map[string]any{"kid": "new"})
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := v.Verify(t.Context(), token)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("new key not picked up by the background refresh after 5s: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestNewJWKSFailures(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	empty := newJWKSServer(t)
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	}))
	t.Cleanup(failing.Close)
	notJSON := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("<html>"))
	}))
	t.Cleanup(notJSON.Close)

	for _, tc := range []struct {
		name, url, want string
	}{
		{"unreachable", closed.URL, "fetch JWK Set"},
		{"empty set", empty.srv.URL, "no key"},
		{"server error", failing.URL, "fetch JWK Set"},
		{"not JSON", notJSON.URL, "fetch JWK Set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := jwtauth.New(t.Context(), jwksConfig(tc.url))
			if err == nil {
				t.Fatalf("New = %v, nil; want an error", v)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New error %q does not mention %q", err, tc.want)
			}
		})
	}
}

// TestUserIDClaimByKey: without UserIDClaim, HMAC tokens (simplejwt's)
// carry the user id in "user_id" and tokens verified with JWKS keys (an
// identity provider's) in "sub"; UserIDClaim names one claim for both.
func TestUserIDClaimByKey(t *testing.T) {
	rsa1, ec1 := rsaKey(t), ecKey(t)
	srv := newJWKSServer(t, publicJWK(t, &rsa1.PublicKey, "rsa-1", jwkset.AlgRS256), publicJWK(t, &ec1.PublicKey, "ec-1", jwkset.AlgES256))
	exp := now.Add(5 * time.Minute)
	rs := func(c jwt.MapClaims) string {
		return sign(t, jwt.SigningMethodRS256, rsa1, c, map[string]any{"kid": "rsa-1"})
	}
	es := func(c jwt.MapClaims) string {
		return sign(t, jwt.SigningMethodES256, ec1, c, map[string]any{"kid": "ec-1"})
	}
	hs := func(c jwt.MapClaims) string { return sign(t, jwt.SigningMethodHS256, testSecret, c, nil) }
	both := oidc("sub-9")
	both["user_id"] = 42
	for _, tc := range []struct {
		name    string
		claim   string
		token   string
		want    string
		wantErr string
	}{
		{"default, RS256 reads sub", "", rs(oidc("auth0|5f7c")), "auth0|5f7c", ""},
		{"default, ES256 reads sub", "", es(oidc("7b1e0c52-4f7a-4d1e-9a55-0c1f2b3d4e5f")), "7b1e0c52-4f7a-4d1e-9a55-0c1f2b3d4e5f", ""},
		{"default, RS256 with both reads sub", "", rs(both), "sub-9", ""},
		{"default, HS256 reads user_id", "", hs(access(42)), "42", ""},
		{"default, HS256 with only sub", "", hs(oidc("u")), "", "token has no user id"},
		{"user_id for all, RS256", "user_id", rs(both), "42", ""},
		{"user_id for all, RS256 with only sub", "user_id", rs(oidc("u")), "", "token has no user id"},
		{"sub for all, HS256", "sub", hs(with(access(42), "sub", "s-1")), "s-1", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := jwksConfig(srv.srv.URL)
			cfg.Secret, cfg.UserIDClaim = testSecret, tc.claim
			v, err := jwtauth.New(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			got, err := v.Verify(t.Context(), tc.token)
			var want domain.Principal
			if tc.wantErr == "" {
				want = domain.Principal{UserID: tc.want, ExpiresAt: exp}
			}
			checkVerify(t, tc.token, got, err, want, tc.wantErr)
		})
	}
}
