package jwtauth_test

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/parleychat/parley/adapters/jwtauth"
	"github.com/parleychat/parley/domain"
)

// FuzzVerify: whatever the token, Verify does not panic, refuses with
// code unauthorized and a reason that never quotes the token, and accepts
// only tokens signed with the secret that name a user and an expiry still
// accepted. Seeded with forgeries of issue 17's hostile test (alg none,
// HS256 with another key, a public-key header on an HMAC token, claims
// tampered after signing, odd encodings); make chaos runs it for a
// bounded time.
func FuzzVerify(f *testing.F) {
	enc := base64.RawURLEncoding.EncodeToString
	tok := func(method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(method, claims).SignedString(key)
		if err != nil {
			f.Fatal(err)
		}
		return s
	}
	good := tok(jwt.SigningMethodHS256, testSecret, access(42))
	parts := strings.Split(good, ".")
	for _, s := range []string{
		good,
		tok(jwt.SigningMethodHS256, []byte("another-secret-0123456789-abcdefghijkl"), access(42)),
		tok(jwt.SigningMethodHS512, testSecret, access(42)),
		tok(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, access(42)),
		tok(jwt.SigningMethodHS256, testSecret, with(access(42), "exp", drop{})),
		tok(jwt.SigningMethodHS256, testSecret, with(access(42), "exp", now.Add(-time.Hour).Unix())),
		tok(jwt.SigningMethodHS256, testSecret, with(access(42), "token_type", "refresh")),
		tok(jwt.SigningMethodHS256, testSecret, with(access(42), "user_id", "")),
		tok(jwt.SigningMethodHS256, testSecret, with(access(42), "user_id", "\x00")),
		tok(jwt.SigningMethodHS256, testSecret, with(access(42), "exp", "tomorrow")),
		enc([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." + parts[1] + "." + parts[2],
		enc([]byte(`{"alg":"none"}`)) + "." + parts[1] + ".",
		parts[0] + "." + enc([]byte(`{"user_id":1,"exp":99999999999}`)) + "." + parts[2],
		parts[0] + "." + parts[1], parts[0] + ".." + parts[2], "..", "", "Bearer " + good,
		good + "=", strings.ToUpper(good), strings.Repeat("a", 9000),
		enc([]byte(`{"alg":"HS256","kid":"../../etc/passwd"}`)) + "." + parts[1] + "." + parts[2],
	} {
		f.Add(s)
	}
	v, err := jwtauth.New(f.Context(), hsConfig())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, token string) {
		p, err := v.Verify(t.Context(), token)
		if err != nil {
			if domain.ErrorCode(err) != domain.EUNAUTHORIZED {
				t.Fatalf("Verify(%q) failed with code %q: %v", token, domain.ErrorCode(err), err)
			}
			if msg := domain.ErrorMessage(err); len(token) > 8 && strings.Contains(msg, token) {
				t.Fatalf("the refusal %q quotes the token", msg)
			}
			return
		}
		if p.UserID == "" || !p.ExpiresAt.Add(jwtauth.DefaultLeeway).After(now) {
			t.Fatalf("Verify(%q) accepted %+v", token, p)
		}
		if _, err := jwt.Parse(token, func(*jwt.Token) (any, error) { return testSecret, nil },
			jwt.WithValidMethods([]string{"HS256", "HS384", "HS512"}), jwt.WithTimeFunc(fixedNow), jwt.WithLeeway(jwtauth.DefaultLeeway)); err != nil {
			t.Fatalf("Verify accepted %q, which is not a token signed with the secret: %v", token, err)
		}
	})
}
