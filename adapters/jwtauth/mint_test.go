package jwtauth_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/adapters/jwtauth"
	"github.com/parleychat/parley/domain"
)

// decodeSegment decodes one part of a token as JSON, keeping numbers exact.
func decodeSegment(t *testing.T, seg string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatalf("decode segment: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("decode segment JSON: %v", err)
	}
	return m
}

var hexJTI = regexp.MustCompile(`^[0-9a-f]{32}$`)

// TestMintShape checks that minted tokens look like simplejwt's access
// tokens, claim by claim.
func TestMintShape(t *testing.T) {
	for _, tc := range []struct {
		name   string
		userID string
		extra  map[string]any
		want   map[string]any // claims other than jti
	}{
		{name: "integer id is a number", userID: "42", want: map[string]any{
			"token_type": "access", "exp": json.Number("1748782800"), "iat": json.Number("1748779200"), "user_id": json.Number("42"),
		}},
		{name: "non-canonical integer stays a string", userID: "042", want: map[string]any{
			"token_type": "access", "exp": json.Number("1748782800"), "iat": json.Number("1748779200"), "user_id": "042",
		}},
		{name: "uuid id is a string", userID: "7b1e0c52-4f7a-4d1e-9a55-0c1f2b3d4e5f", want: map[string]any{
			"token_type": "access", "exp": json.Number("1748782800"), "iat": json.Number("1748779200"),
			"user_id": "7b1e0c52-4f7a-4d1e-9a55-0c1f2b3d4e5f",
		}},
		{name: "extra claims", userID: "42", extra: map[string]any{"roles": []string{"auditor"}, "iss": "chatctl"}, want: map[string]any{
			"token_type": "access", "exp": json.Number("1748782800"), "iat": json.Number("1748779200"), "user_id": json.Number("42"),
			"roles": []any{"auditor"}, "iss": "chatctl",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			token, err := jwtauth.Mint(testSecret, tc.userID, time.Hour, now, tc.extra)
			if err != nil {
				t.Fatalf("Mint: %v", err)
			}
			parts := strings.Split(token, ".")
			if len(parts) != 3 {
				t.Fatalf("token has %d segments, want 3", len(parts))
			}
			if diff := cmp.Diff(decodeSegment(t, parts[0]), map[string]any{"alg": "HS256", "typ": "JWT"}); diff != "" {
				t.Errorf("header (-got +want):\n%s", diff)
			}
			claims := decodeSegment(t, parts[1])
			jti, _ := claims["jti"].(string)
			if !hexJTI.MatchString(jti) {
				t.Errorf("jti = %q, want 32 hex digits", claims["jti"])
			}
			delete(claims, "jti")
			if diff := cmp.Diff(claims, tc.want); diff != "" {
				t.Errorf("claims (-got +want):\n%s", diff)
			}
		})
	}
}

func TestMintVerifyRoundTrip(t *testing.T) {
	v, err := jwtauth.New(t.Context(), hsConfig())
	if err != nil {
		t.Fatal(err)
	}
	token, err := jwtauth.Mint(testSecret, "42", 15*time.Minute, now, map[string]any{"roles": []string{"auditor"}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.Verify(t.Context(), token)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	want := domain.Principal{UserID: "42", Roles: []string{"auditor"}, ExpiresAt: now.Add(15 * time.Minute)}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("principal (-got +want):\n%s", diff)
	}

	other, err := jwtauth.Mint(testSecret, "42", 15*time.Minute, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	if decodeSegment(t, strings.Split(token, ".")[1])["jti"] == decodeSegment(t, strings.Split(other, ".")[1])["jti"] {
		t.Error("two minted tokens share a jti")
	}
}

func TestMintErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		secret  []byte
		userID  string
		ttl     time.Duration
		extra   map[string]any
		wantMsg string
	}{
		{"short secret", []byte("short-secret-31-bytes-long-1234"), "42", time.Hour, nil, "mint token: secret is shorter than 32 bytes"},
		{"no secret", nil, "42", time.Hour, nil, "mint token: secret is shorter than 32 bytes"},
		{"empty user", testSecret, "", time.Hour, nil, "mint token: user id is empty"},
		{"blank user", testSecret, " ", time.Hour, nil, "mint token: user id is empty"},
		{"zero ttl", testSecret, "42", 0, nil, "mint token: ttl 0s is not positive"},
		{"negative ttl", testSecret, "42", -time.Minute, nil, "mint token: ttl -1m0s is not positive"},
		{"extra sets exp", testSecret, "42", time.Hour, map[string]any{"exp": 1}, `mint token: extra claim "exp" is set by Mint itself`},
		{"extra sets token_type", testSecret, "42", time.Hour, map[string]any{"token_type": "refresh"}, `mint token: extra claim "token_type" is set by Mint itself`},
		{"extra sets user_id", testSecret, "42", time.Hour, map[string]any{"user_id": 1}, `mint token: extra claim "user_id" is set by Mint itself`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			token, err := jwtauth.Mint(tc.secret, tc.userID, tc.ttl, now, tc.extra)
			if err == nil {
				t.Fatalf("Mint = %q, nil; want an error", token)
			}
			if code := domain.ErrorCode(err); code != domain.EINVALID {
				t.Errorf("ErrorCode = %q, want %q", code, domain.EINVALID)
			}
			if got := domain.ErrorMessage(err); got != tc.wantMsg {
				t.Errorf("message = %q, want %q", got, tc.wantMsg)
			}
			if len(tc.secret) > 0 && strings.Contains(err.Error(), string(tc.secret)) {
				t.Errorf("error contains the secret: %v", err)
			}
		})
	}
}

// TestDevIssuer: the development login's tokens verify against the
// development secret, for the user asked for, with the expiry it reports.
func TestDevIssuer(t *testing.T) {
	v, err := jwtauth.New(t.Context(), jwtauth.Config{Secret: []byte(jwtauth.DevJWTSecret), Leeway: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-time.Minute).Truncate(time.Second).Add(700 * time.Millisecond)
	clock := func() time.Time { return at }
	for _, d := range []jwtauth.DevIssuer{{Now: clock}, {Now: clock, TTL: 2 * time.Minute}} {
		tok, exp, err := d.DevToken(t.Context(), "민지")
		if err != nil {
			t.Fatal(err)
		}
		p, err := v.Verify(t.Context(), tok)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		ttl := d.TTL
		if ttl == 0 {
			ttl = jwtauth.DefaultDevTokenTTL
		}
		want := domain.Principal{UserID: "민지", ExpiresAt: clock().Add(ttl).Truncate(time.Second)}
		if diff := cmp.Diff(want, p); diff != "" {
			t.Errorf("principal (-want +got):\n%s", diff)
		}
		if !exp.Equal(p.ExpiresAt) {
			t.Errorf("DevToken says it expires at %v, the token says %v", exp, p.ExpiresAt)
		}
	}
	if _, _, err := (jwtauth.DevIssuer{}).DevToken(t.Context(), " "); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("DevToken for a blank user: %v, want invalid", err)
	}
}
