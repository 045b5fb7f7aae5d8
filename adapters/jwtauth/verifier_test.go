package jwtauth_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/adapters/jwtauth"
	"github.com/parleychat/parley/domain"
)

// now is the fixed clock of every test.
var now = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

var testSecret = []byte("test-secret-for-hs256-0123456789-abcdefghij")

func fixedNow() time.Time { return now }

// hsConfig is a Verifier configuration for simplejwt's HS256 tokens.
func hsConfig() jwtauth.Config {
	return jwtauth.Config{Secret: testSecret, Now: fixedNow}
}

// access returns the claims of a simplejwt access token for userID, valid
// for five minutes from now.
func access(userID any) jwt.MapClaims {
	return jwt.MapClaims{
		"token_type": "access",
		"exp":        now.Add(5 * time.Minute).Unix(),
		"iat":        now.Unix(),
		"jti":        "0f6a1c2e9b7d4e5f8a3b2c1d0e9f8a7b",
		"user_id":    userID,
	}
}

// oidc returns the claims of an identity provider's access token (Keycloak,
// Auth0, Entra ID) for subject sub, valid for five minutes from now: the
// user id is "sub", and there is no token_type.
func oidc(sub any) jwt.MapClaims {
	return jwt.MapClaims{
		"iss":   "https://id.example/realms/parley",
		"aud":   "parley",
		"sub":   sub,
		"exp":   now.Add(5 * time.Minute).Unix(),
		"iat":   now.Unix(),
		"scope": "openid profile",
		"typ":   "Bearer",
	}
}

// drop marks a claim that with removes.
type drop struct{}

// with returns a copy of c with the claims of kv (alternating names and
// values) set, or removed when the value is drop{}.
func with(c jwt.MapClaims, kv ...any) jwt.MapClaims {
	out := maps.Clone(c)
	for i := 0; i < len(kv); i += 2 {
		k := kv[i].(string)
		if _, ok := kv[i+1].(drop); ok {
			delete(out, k)
			continue
		}
		out[k] = kv[i+1]
	}
	return out
}

// sign returns claims signed with method and key, with the extra header
// fields of header.
func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims, header map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	maps.Copy(tok.Header, header)
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign %s token: %v", method.Alg(), err)
	}
	return s
}

// hs256 signs claims like simplejwt does with the test secret.
func hs256(claims jwt.MapClaims) func(t *testing.T) string {
	return func(t *testing.T) string { return sign(t, jwt.SigningMethodHS256, testSecret, claims, nil) }
}

// raw returns a fixed string as a token.
func raw(s string) func(t *testing.T) string { return func(*testing.T) string { return s } }

// handMade builds header.payload.signature from JSON texts, for tokens the
// jwt package refuses to produce.
func handMade(header, payload, signature string) func(t *testing.T) string {
	enc := base64.RawURLEncoding.EncodeToString
	return raw(enc([]byte(header)) + "." + enc([]byte(payload)) + "." + enc([]byte(signature)))
}

type verifyCase struct {
	name  string
	cfg   func(*jwtauth.Config) // adjusts hsConfig; nil for none
	token func(t *testing.T) string
	// want is the principal of a valid token; wantErr, when set, is the
	// client-safe reason of the refusal instead.
	want    domain.Principal
	wantErr string
}

func hsCases(t *testing.T) []verifyCase {
	t.Helper()
	exp := now.Add(5 * time.Minute)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	longToken, err := jwtauth.Mint(testSecret, "42", time.Hour, now, map[string]any{"padding": strings.Repeat("x", 5000)})
	if err != nil {
		t.Fatal(err)
	}
	valid := hs256(access(42))(t)
	tampered := strings.Split(valid, ".")
	tampered[1] = base64.RawURLEncoding.EncodeToString([]byte(`{"token_type":"access","exp":9999999999,"user_id":1}`))

	return []verifyCase{
		{name: "user_id number", token: hs256(access(42)), want: domain.Principal{UserID: "42", ExpiresAt: exp}},
		{name: "user_id string", token: hs256(access("42")), want: domain.Principal{UserID: "42", ExpiresAt: exp}},
		{name: "user_id uuid string", token: hs256(access("7b1e0c52-4f7a-4d1e-9a55-0c1f2b3d4e5f")),
			want: domain.Principal{UserID: "7b1e0c52-4f7a-4d1e-9a55-0c1f2b3d4e5f", ExpiresAt: exp}},
		{name: "user_id negative integer", token: hs256(access(-7)), want: domain.Principal{UserID: "-7", ExpiresAt: exp}},
		{name: "user_id large integer", token: hs256(access(int64(9007199254740993))),
			want: domain.Principal{UserID: "9007199254740993", ExpiresAt: exp}},
		{name: "user_id float", token: hs256(access(4.2)), wantErr: "token user id is not an integer or a string"},
		{name: "user_id exponent", token: handMade(`{"alg":"HS256"}`, `{"exp":1748779500,"user_id":1e3}`, "x"),
			wantErr: "signature invalid"}, // the signature is checked before the claims
		{name: "user_id exponent signed", token: hs256(with(access(nil), "user_id", json.Number("1e3"))),
			wantErr: "token user id is not an integer or a string"},
		{name: "user_id empty string", token: hs256(access("")), wantErr: "token user id is empty"},
		{name: "user_id blank string", token: hs256(access("  ")), wantErr: "token user id is empty"},
		{name: "user_id bool", token: hs256(access(true)), wantErr: "token user id is not an integer or a string"},
		{name: "user_id missing", token: hs256(with(access(42), "user_id", drop{})), wantErr: "token has no user id"},
		{name: "user_id claim renamed", cfg: func(c *jwtauth.Config) { c.UserIDClaim = "sub" },
			token: hs256(with(access(42), "user_id", drop{}, "sub", "u-9")), want: domain.Principal{UserID: "u-9", ExpiresAt: exp}},

		{name: "roles string", token: hs256(with(access(42), "roles", "auditor")),
			want: domain.Principal{UserID: "42", Roles: []string{"auditor"}, ExpiresAt: exp}},
		{name: "roles array", token: hs256(with(access(42), "roles", []string{"auditor", "admin"})),
			want: domain.Principal{UserID: "42", Roles: []string{"auditor", "admin"}, ExpiresAt: exp}},
		{name: "roles empty array", token: hs256(with(access(42), "roles", []string{})),
			want: domain.Principal{UserID: "42", ExpiresAt: exp}},
		{name: "roles claim renamed", cfg: func(c *jwtauth.Config) { c.RoleClaim = "groups" },
			token: hs256(with(access(42), "groups", []string{"auditor"}, "roles", "ignored")),
			want:  domain.Principal{UserID: "42", Roles: []string{"auditor"}, ExpiresAt: exp}},
		{name: "roles not strings", token: hs256(with(access(42), "roles", []any{"auditor", 1})), wantErr: "token roles are not strings"},
		{name: "roles object", token: hs256(with(access(42), "roles", map[string]any{"a": 1})),
			wantErr: "token roles are not a string or an array of strings"},

		{name: "expired", token: hs256(with(access(42), "exp", now.Add(-time.Minute).Unix())), wantErr: "token expired"},
		{name: "expired within leeway", token: hs256(with(access(42), "exp", now.Add(-10*time.Second).Unix())),
			want: domain.Principal{UserID: "42", ExpiresAt: now.Add(-10 * time.Second)}},
		{name: "expired within default leeway but leeway disabled", cfg: func(c *jwtauth.Config) { c.Leeway = time.Nanosecond },
			token: hs256(with(access(42), "exp", now.Add(-10*time.Second).Unix())), wantErr: "token expired"},
		{name: "expired a second ago, leeway disabled", cfg: func(c *jwtauth.Config) { c.Leeway = time.Nanosecond },
			token: hs256(with(access(42), "exp", now.Add(-time.Second).Unix())), wantErr: "token expired"},
		{name: "not yet valid", token: hs256(with(access(42), "nbf", now.Add(5*time.Minute).Unix())), wantErr: "token not valid yet"},
		{name: "not yet valid within leeway", token: hs256(with(access(42), "nbf", now.Add(10*time.Second).Unix())),
			want: domain.Principal{UserID: "42", ExpiresAt: exp}},
		{name: "issued in the future", token: hs256(with(access(42), "iat", now.Add(5*time.Minute).Unix())),
			wantErr: "token issued in the future"},
		{name: "issued in the future within leeway", token: hs256(with(access(42), "iat", now.Add(10*time.Second).Unix())),
			want: domain.Principal{UserID: "42", ExpiresAt: exp}},
		{name: "missing exp", token: hs256(with(access(42), "exp", drop{})), wantErr: "token has no expiry"},
		{name: "exp not a number", token: hs256(with(access(42), "exp", "tomorrow")),
			wantErr: "token has a malformed time, issuer or audience claim"},

		{name: "refresh token", token: hs256(with(access(42), "token_type", "refresh")), wantErr: "token is a refresh token"},
		{name: "sliding token", token: hs256(with(access(42), "token_type", "sliding")), wantErr: "token is not an access token"},
		{name: "token_type not a string", token: hs256(with(access(42), "token_type", 1)), wantErr: "token is not an access token"},
		{name: "no token_type", token: hs256(with(access(42), "token_type", drop{})), want: domain.Principal{UserID: "42", ExpiresAt: exp}},

		{name: "wrong secret", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS256, []byte("another-secret-0123456789-0123456789-xyz"), access(42), nil)
		}, wantErr: "signature invalid"},
		{name: "tampered payload", token: raw(strings.Join(tampered, ".")), wantErr: "signature invalid"},
		{name: "alg none", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, access(42), nil)
		}, wantErr: "algorithm none not allowed"},
		{name: "alg none with a signature", token: handMade(`{"alg":"none","typ":"JWT"}`, `{"exp":1748779500,"user_id":42}`, "sig"),
			wantErr: "algorithm none not allowed"},
		{name: "alg HS512 not allowed", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodHS512, testSecret, access(42), nil)
		}, wantErr: "algorithm HS512 not allowed"},
		{name: "alg HS512 allowed", cfg: func(c *jwtauth.Config) { c.Algorithms = []string{"HS256", "HS512"} },
			token: func(t *testing.T) string { return sign(t, jwt.SigningMethodHS512, testSecret, access(42), nil) },
			want:  domain.Principal{UserID: "42", ExpiresAt: exp}},
		{name: "alg RS256 not allowed", token: func(t *testing.T) string {
			return sign(t, jwt.SigningMethodRS256, rsaKey, access(42), nil)
		}, wantErr: "algorithm RS256 not allowed"},
		{name: "alg unknown", token: handMade(`{"alg":"HS999","typ":"JWT"}`, `{"exp":1748779500,"user_id":42}`, "sig"),
			wantErr: "algorithm missing or not supported"},
		{name: "alg missing", token: handMade(`{"typ":"JWT"}`, `{"exp":1748779500,"user_id":42}`, "sig"),
			wantErr: "algorithm missing or not supported"},

		{name: "too long but otherwise valid", token: raw(longToken), wantErr: "token too long"},
		{name: "long token under a raised limit", cfg: func(c *jwtauth.Config) { c.MaxTokenLength = 1 << 20 },
			token: raw(longToken), want: domain.Principal{UserID: "42", ExpiresAt: now.Add(time.Hour)}},
		{name: "huge garbage", token: raw(strings.Repeat("a", 10<<20)), wantErr: "token too long"},

		{name: "issuer match", cfg: func(c *jwtauth.Config) { c.Issuer = "https://auth.parley.chat" },
			token: hs256(with(access(42), "iss", "https://auth.parley.chat")), want: domain.Principal{UserID: "42", ExpiresAt: exp}},
		{name: "issuer mismatch", cfg: func(c *jwtauth.Config) { c.Issuer = "https://auth.parley.chat" },
			token: hs256(with(access(42), "iss", "https://evil.example")), wantErr: "issuer mismatch"},
		{name: "issuer missing", cfg: func(c *jwtauth.Config) { c.Issuer = "https://auth.parley.chat" },
			token: hs256(access(42)), wantErr: "issuer mismatch"},
		{name: "issuer not configured", token: hs256(with(access(42), "iss", "anyone")), want: domain.Principal{UserID: "42", ExpiresAt: exp}},
		{name: "audience match", cfg: func(c *jwtauth.Config) { c.Audience = "parley" },
			token: hs256(with(access(42), "aud", "parley")), want: domain.Principal{UserID: "42", ExpiresAt: exp}},
		{name: "audience match in array", cfg: func(c *jwtauth.Config) { c.Audience = "parley" },
			token: hs256(with(access(42), "aud", []string{"billing", "parley"})), want: domain.Principal{UserID: "42", ExpiresAt: exp}},
		{name: "audience mismatch", cfg: func(c *jwtauth.Config) { c.Audience = "parley" },
			token: hs256(with(access(42), "aud", "billing")), wantErr: "audience mismatch"},
		{name: "audience missing", cfg: func(c *jwtauth.Config) { c.Audience = "parley" },
			token: hs256(access(42)), wantErr: "audience mismatch"},

		{name: "empty", token: raw(""), wantErr: "token missing"},
		{name: "one segment", token: raw("abc"), wantErr: "token malformed"},
		{name: "two segments", token: raw("abc.def"), wantErr: "token malformed"},
		{name: "four segments", token: raw(valid + ".x"), wantErr: "token malformed"},
		{name: "not base64", token: raw("!!!.!!!.!!!"), wantErr: "token malformed"},
		{name: "header not JSON", token: handMade(`not json`, `{"exp":1748779500}`, "sig"), wantErr: "token malformed"},
		{name: "payload not JSON", token: handMade(`{"alg":"HS256"}`, `[1,2`, "sig"), wantErr: "token malformed"},
		{name: "payload not an object", token: handMade(`{"alg":"HS256"}`, `"str"`, "sig"), wantErr: "token malformed"},
		{name: "signature not base64", token: raw(strings.Join(strings.Split(valid, ".")[:2], ".") + ".***"), wantErr: "token malformed"},
		{name: "Bearer prefix left on", token: raw("Bearer " + valid), wantErr: "token malformed"},
	}
}

func TestVerifyHS256(t *testing.T) {
	for _, tc := range hsCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			cfg := hsConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			v, err := jwtauth.New(t.Context(), cfg)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			token := tc.token(t)
			got, err := v.Verify(t.Context(), token)
			checkVerify(t, token, got, err, tc.want, tc.wantErr)
		})
	}
}

// checkVerify compares a Verify result with the wanted principal, or with
// the wanted refusal reason; refusals must be EUNAUTHORIZED and must not
// contain the token.
func checkVerify(t *testing.T, token string, got domain.Principal, err error, want domain.Principal, wantErr string) {
	t.Helper()
	if wantErr == "" {
		if err != nil {
			t.Fatalf("Verify: %v, want principal %+v", err, want)
		}
		if diff := cmp.Diff(got, want); diff != "" {
			t.Errorf("Verify principal (-got +want):\n%s", diff)
		}
		return
	}
	if err == nil {
		t.Fatalf("Verify = %+v, nil; want error %q", got, wantErr)
	}
	if code := domain.ErrorCode(err); code != domain.EUNAUTHORIZED {
		t.Errorf("ErrorCode = %q, want %q (err: %v)", code, domain.EUNAUTHORIZED, err)
	}
	if msg := domain.ErrorMessage(err); msg != wantErr {
		t.Errorf("ErrorMessage = %q, want %q (err: %v)", msg, wantErr, err)
	}
	if diff := cmp.Diff(got, domain.Principal{}); diff != "" {
		t.Errorf("Verify returned a principal with its error (-got +want):\n%s", diff)
	}
	checkNoToken(t, err.Error(), token)
}

// checkNoToken fails if text contains the token or any of its longer
// segments.
func checkNoToken(t *testing.T, text, token string) {
	t.Helper()
	if token == "" {
		return
	}
	if strings.Contains(text, token) {
		t.Errorf("error text contains the token: %.200q", text)
		return
	}
	for i, seg := range strings.Split(token, ".") {
		if len(seg) >= 12 && strings.Contains(text, seg) {
			t.Errorf("error text contains segment %d of the token: %.200q", i, text)
		}
	}
}

// TestErrorsNeverContainToken runs every refused token through Verify and
// checks that neither the error text nor its client message contains it.
func TestErrorsNeverContainToken(t *testing.T) {
	var refused int
	for _, tc := range hsCases(t) {
		if tc.wantErr == "" {
			continue
		}
		refused++
		cfg := hsConfig()
		if tc.cfg != nil {
			tc.cfg(&cfg)
		}
		v, err := jwtauth.New(t.Context(), cfg)
		if err != nil {
			t.Fatalf("%s: New: %v", tc.name, err)
		}
		token := tc.token(t)
		_, err = v.Verify(t.Context(), token)
		if err == nil {
			t.Errorf("%s: Verify succeeded, want an error", tc.name)
			continue
		}
		checkNoToken(t, err.Error(), token)
		checkNoToken(t, domain.ErrorMessage(err), token)
		checkNoToken(t, strings.ToLower(err.Error()), strings.ToLower(token))
	}
	if refused < 20 {
		t.Fatalf("only %d refused tokens checked", refused)
	}
}

func TestVerifyConcurrent(t *testing.T) {
	v, err := jwtauth.New(t.Context(), hsConfig())
	if err != nil {
		t.Fatal(err)
	}
	good := hs256(access(42))(t)
	bad := hs256(with(access(42), "token_type", "refresh"))(t)
	done := make(chan error)
	for i := range 8 {
		go func() {
			tok := good
			if i%2 == 1 {
				tok = bad
			}
			var err error
			for range 50 {
				if _, err = v.Verify(t.Context(), tok); (err == nil) != (i%2 == 0) {
					break
				}
				err = nil
			}
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

func TestPrincipalHasRole(t *testing.T) {
	v, err := jwtauth.New(t.Context(), hsConfig())
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.Verify(t.Context(), hs256(with(access(42), "roles", []string{"auditor"}))(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		role string
		want bool
	}{{"auditor", true}, {"Auditor", false}, {"admin", false}, {"", false}} {
		if got := p.HasRole(tc.role); got != tc.want {
			t.Errorf("HasRole(%q) = %v, want %v", tc.role, got, tc.want)
		}
	}
}

// ecKey and rsaKey generate test keys.
func ecKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func rsaKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
