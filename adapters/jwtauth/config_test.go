package jwtauth_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/adapters/jwtauth"
)

func TestConfigValidate(t *testing.T) {
	const idp = "https://idp.example/.well-known/jwks.json"
	short := []byte("only-sixteen-byt")
	for _, tc := range []struct {
		name string
		cfg  jwtauth.Config
		want []string // one substring per expected problem, in order
	}{
		{name: "secret", cfg: jwtauth.Config{Secret: testSecret}},
		{name: "dev secret", cfg: jwtauth.Config{Secret: []byte(jwtauth.DevJWTSecret)}},
		{name: "jwks", cfg: jwtauth.Config{JWKSURL: idp}},
		{name: "jwks on loopback over http", cfg: jwtauth.Config{JWKSURL: "http://127.0.0.1:8080/jwks"}},
		{name: "jwks on localhost over http", cfg: jwtauth.Config{JWKSURL: "http://localhost:8080/jwks"}},
		{name: "both", cfg: jwtauth.Config{Secret: testSecret, JWKSURL: idp, Algorithms: []string{"HS256", "RS256", "ES256", "EdDSA"}}},
		{name: "every limit set", cfg: jwtauth.Config{Secret: testSecret, Leeway: 5 * time.Minute, MaxTokenLength: 8192,
			JWKSUnknownKIDWait: time.Minute, UserIDClaim: "sub", RoleClaim: "groups", Issuer: "i", Audience: "a"}},

		{name: "nothing set", cfg: jwtauth.Config{}, want: []string{"set Secret (HS256 shared secret) or JWKSURL"}},
		{name: "short secret", cfg: jwtauth.Config{Secret: short}, want: []string{"Secret is shorter than 32 bytes"}},
		{name: "alg none", cfg: jwtauth.Config{Secret: testSecret, Algorithms: []string{"HS256", "none"}},
			want: []string{`algorithm "none" (unsigned tokens) is never allowed`}},
		{name: "alg unknown", cfg: jwtauth.Config{Secret: testSecret, Algorithms: []string{"HS256", "XS256"}},
			want: []string{`algorithm "XS256" is not supported`}},
		{name: "empty allow-list", cfg: jwtauth.Config{Secret: testSecret, Algorithms: []string{}},
			want: []string{"Algorithms is empty"}},
		{name: "RS256 without JWKS", cfg: jwtauth.Config{Secret: testSecret, Algorithms: []string{"RS256"}},
			want: []string{"algorithm RS256 needs JWKSURL", "Secret is set but Algorithms allows no HMAC algorithm"}},
		{name: "HS256 without secret", cfg: jwtauth.Config{JWKSURL: idp, Algorithms: []string{"HS256"}},
			want: []string{"algorithm HS256 needs Secret", "JWKSURL is set but Algorithms allows no public-key algorithm"}},
		{name: "plain http JWKS", cfg: jwtauth.Config{JWKSURL: "http://idp.example/jwks"}, want: []string{"uses plain http"}},
		{name: "relative JWKS URL", cfg: jwtauth.Config{JWKSURL: "/jwks.json"}, want: []string{"not an absolute https URL"}},
		{name: "JWKS URL of another scheme", cfg: jwtauth.Config{JWKSURL: "ftp://idp.example/jwks"}, want: []string{"not an absolute https URL"}},
		{name: "negative leeway", cfg: jwtauth.Config{Secret: testSecret, Leeway: -time.Second}, want: []string{"Leeway -1s is out of range"}},
		{name: "huge leeway", cfg: jwtauth.Config{Secret: testSecret, Leeway: time.Hour}, want: []string{"Leeway 1h0m0s is out of range"}},
		{name: "negative max length", cfg: jwtauth.Config{Secret: testSecret, MaxTokenLength: -1}, want: []string{"MaxTokenLength -1 is negative"}},
		{name: "long unknown-kid wait", cfg: jwtauth.Config{JWKSURL: idp, JWKSUnknownKIDWait: 2 * time.Minute},
			want: []string{"JWKSUnknownKIDWait 2m0s is out of range"}},
		{name: "negative JWKS durations", cfg: jwtauth.Config{JWKSURL: idp, JWKSRefreshInterval: -1, JWKSRefreshRateLimit: -1, JWKSFetchTimeout: -1},
			want: []string{"JWKSRefreshInterval", "JWKSRefreshRateLimit", "JWKSFetchTimeout"}},
		{name: "same claim twice", cfg: jwtauth.Config{Secret: testSecret, UserIDClaim: "sub", RoleClaim: "sub"},
			want: []string{`UserIDClaim and RoleClaim are both "sub"`}},
		{name: "roles in the default user id claim", cfg: jwtauth.Config{Secret: testSecret, RoleClaim: "sub"},
			want: []string{`UserIDClaim and RoleClaim are both "sub"`}},
		{name: "several problems", cfg: jwtauth.Config{Secret: short, Leeway: -time.Second, MaxTokenLength: -5},
			want: []string{"Secret is shorter", "Leeway", "MaxTokenLength"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			var got []string
			if err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if len(got) != len(tc.want) {
				t.Fatalf("Validate() reported %d problems, want %d:\n%v", len(got), len(tc.want), err)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], "jwtauth config: ") || !strings.Contains(got[i], tc.want[i]) {
					t.Errorf("problem %d = %q, want it to mention %q", i, got[i], tc.want[i])
				}
				for _, secret := range [][]byte{testSecret, short} {
					if strings.Contains(got[i], string(secret)) {
						t.Errorf("problem %d contains the secret: %q", i, got[i])
					}
				}
			}
			if _, nerr := jwtauth.New(t.Context(), tc.cfg); (nerr == nil) != (err == nil) && tc.cfg.JWKSURL == "" {
				t.Errorf("New error %v disagrees with Validate error %v", nerr, err)
			}
		})
	}
}

// TestConfigNeverPrintsSecret: logging or printing a Config does not leak
// its secret.
func TestConfigNeverPrintsSecret(t *testing.T) {
	cfg := jwtauth.Config{Secret: testSecret, JWKSURL: "https://user:hunter2-password@idp.example/jwks"}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("starting", "jwt", cfg)
	outputs := map[string]string{
		"slog": buf.String(),
		"%v":   fmt.Sprintf("%v", cfg),
		"%+v":  fmt.Sprintf("%+v", cfg),
		"%#v":  fmt.Sprintf("%#v", cfg),
		"%s":   fmt.Sprintf("%s", cfg),
	}
	for how, out := range outputs {
		for _, secret := range []string{string(testSecret), "hunter2-password", fmt.Sprint(testSecret)} {
			if strings.Contains(out, secret) {
				t.Errorf("%s output contains a secret: %s", how, out)
			}
		}
	}
	if !strings.Contains(outputs["slog"], `"secret_set":true`) {
		t.Errorf("slog output does not say a secret is set: %s", outputs["slog"])
	}
}

func TestRedacted(t *testing.T) {
	const token = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjo0Mn0.c2lnbmF0dXJl"
	r := jwtauth.Redacted(token)
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("ws connect", "token", r, slog.Group("req", "authorization", r))
	if strings.Contains(buf.String(), token) {
		t.Errorf("log line contains the token: %s", buf.String())
	}
	if got, want := strings.Count(buf.String(), `"[REDACTED]"`), 2; got != want {
		t.Errorf("log line has %d redacted values, want %d: %s", got, want, buf.String())
	}
	got := []string{fmt.Sprint(r), fmt.Sprintf("%s", r), fmt.Sprintf("%q", r), fmt.Sprintf("%+v", r), fmt.Sprintf("%#v", r)}
	want := []string{"[REDACTED]", "[REDACTED]", `"[REDACTED]"`, "[REDACTED]", "[REDACTED]"}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("formatted (-got +want):\n%s", diff)
	}
	if string(r) != token {
		t.Error("string(Redacted) lost the value")
	}
}
