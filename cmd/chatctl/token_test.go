package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/adapters/jwtauth"
	"github.com/parleychat/parley/domain"
)

const testJWTSecret = "chatctl-test-secret-0123456789-0123456789"

// testDataKey is the tests' data key (PARLEY_DATA_KEY): 32 bytes in hex.
const testDataKey = "6368617463746c2d746573742d646174612d6b65792d30313233343536373839"

// env returns a getenv over a fixed map, with testDataKey as
// PARLEY_DATA_KEY unless the map sets it or PARLEY_DATA_KEY_FILE.
func env(vars map[string]string) func(string) string {
	return func(k string) string {
		if v, ok := vars[k]; ok || k != "PARLEY_DATA_KEY" || vars["PARLEY_DATA_KEY_FILE"] != "" {
			return v
		}
		return testDataKey
	}
}

// verifyToken checks token with a Verifier for secret, as the server would.
func verifyToken(t *testing.T, secret, token string) domain.Principal {
	t.Helper()
	v, err := jwtauth.New(t.Context(), jwtauth.Config{Secret: []byte(secret)})
	if err != nil {
		t.Fatalf("jwtauth.New: %v", err)
	}
	p, err := v.Verify(t.Context(), token)
	if err != nil {
		t.Fatalf("Verify minted token: %v", err)
	}
	return p
}

func TestRunToken(t *testing.T) {
	for _, tc := range []struct {
		name        string
		args        []string
		env         map[string]string
		secret      string // the secret the token must verify with
		wantUser    string
		wantRoles   []string
		wantTTL     time.Duration
		wantWarning bool
	}{
		{name: "env secret", args: []string{"--user", "42"}, env: map[string]string{"PARLEY_JWT_SECRET": testJWTSecret},
			secret: testJWTSecret, wantUser: "42", wantTTL: time.Hour},
		{name: "dev secret with warning", args: []string{"--user", "42", "--ttl", "15m"},
			secret: jwtauth.DevJWTSecret, wantUser: "42", wantTTL: 15 * time.Minute, wantWarning: true},
		{name: "roles", args: []string{"--user=7", "--roles", "auditor, admin"}, env: map[string]string{"PARLEY_JWT_SECRET": testJWTSecret},
			secret: testJWTSecret, wantUser: "7", wantRoles: []string{"auditor", "admin"}, wantTTL: time.Hour},
		{name: "single dash flags and uuid user", args: []string{"-user", "7b1e0c52-4f7a-4d1e-9a55-0c1f2b3d4e5f", "-ttl", "720h"},
			env: map[string]string{"PARLEY_JWT_SECRET": testJWTSecret}, secret: testJWTSecret,
			wantUser: "7b1e0c52-4f7a-4d1e-9a55-0c1f2b3d4e5f", wantTTL: 720 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			before := time.Now().Truncate(time.Second)
			if err := runToken(t.Context(), tc.args, env(tc.env), &stdout, &stderr); err != nil {
				t.Fatalf("runToken: %v\nstderr: %s", err, stderr.String())
			}
			after := time.Now()

			out := stdout.String()
			token, ok := strings.CutSuffix(out, "\n")
			if !ok || strings.ContainsAny(token, " \n\t") || strings.Count(token, ".") != 2 {
				t.Fatalf("stdout = %q, want exactly one token and a newline", out)
			}
			p := verifyToken(t, tc.secret, token)
			if diff := cmp.Diff(p.UserID, tc.wantUser); diff != "" {
				t.Errorf("user (-got +want):\n%s", diff)
			}
			if diff := cmp.Diff(p.Roles, tc.wantRoles); diff != "" {
				t.Errorf("roles (-got +want):\n%s", diff)
			}
			if p.ExpiresAt.Before(before.Add(tc.wantTTL)) || p.ExpiresAt.After(after.Add(tc.wantTTL)) {
				t.Errorf("expires at %v, want %v after minting (between %v and %v)", p.ExpiresAt, tc.wantTTL, before, after)
			}

			warned := strings.Contains(stderr.String(), "development secret")
			if warned != tc.wantWarning {
				t.Errorf("stderr = %q; warned about the development secret: %v, want %v", stderr.String(), warned, tc.wantWarning)
			}
			if !tc.wantWarning && stderr.Len() != 0 {
				t.Errorf("stderr = %q, want nothing", stderr.String())
			}
			for _, secret := range []string{testJWTSecret, jwtauth.DevJWTSecret} {
				if strings.Contains(stderr.String(), secret) {
					t.Errorf("stderr contains a secret: %q", stderr.String())
				}
			}
		})
	}
}

func TestRunTokenErrors(t *testing.T) {
	good := map[string]string{"PARLEY_JWT_SECRET": testJWTSecret}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want []string // substrings of the error, one per problem
	}{
		{"no user", nil, good, []string{"--user is required"}},
		{"blank user", []string{"--user", " "}, good, []string{"--user is required"}},
		{"zero ttl", []string{"--user", "42", "--ttl", "0s"}, good, []string{"--ttl 0s is out of range"}},
		{"negative ttl", []string{"--user", "42", "--ttl", "-1h"}, good, []string{"--ttl -1h0m0s is out of range"}},
		{"ttl over 30 days", []string{"--user", "42", "--ttl", "721h"}, good, []string{"--ttl 721h0m0s is out of range"}},
		{"ttl not a duration", []string{"--user", "42", "--ttl", "1 day"}, good, []string{`invalid value "1 day" for flag --ttl`}},
		{"unknown flag", []string{"--user", "42", "--admin"}, good, []string{"flag provided but not defined: --admin"}},
		{"stray argument", []string{"--user", "42", "extra"}, good, []string{`unexpected argument "extra"`}},
		{"empty role", []string{"--user", "42", "--roles", "auditor,,admin"}, good, []string{"has an empty role"}},
		{"short secret", []string{"--user", "42"}, map[string]string{"PARLEY_JWT_SECRET": "too-short-secret"},
			[]string{"PARLEY_JWT_SECRET is shorter than 32 bytes"}},
		{"several problems", []string{"--ttl", "0s"}, map[string]string{"PARLEY_JWT_SECRET": "too-short-secret"},
			[]string{"--user is required", "--ttl 0s", "PARLEY_JWT_SECRET is shorter"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := runToken(t.Context(), tc.args, env(tc.env), &stdout, &stderr)
			if err == nil {
				t.Fatalf("runToken succeeded, stdout %q; want an error", stdout.String())
			}
			var ee *exitError
			if !errors.As(err, &ee) || ee.Code != 2 {
				t.Errorf("runToken error %v is not a usage error (exit status 2)", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if got := strings.Count(err.Error(), "\n") + 1; len(tc.want) > 1 && got != len(tc.want) {
				t.Errorf("error reports %d problems, want %d: %q", got, len(tc.want), err)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout = %q, want nothing on error", stdout.String())
			}
			if strings.Contains(err.Error()+stderr.String(), "too-short-secret") {
				t.Errorf("output contains the secret: %v / %q", err, stderr.String())
			}
		})
	}
}

func TestRunTokenHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := runToken(t.Context(), []string{"--help"}, env(nil), &stdout, &stderr); err != nil {
		t.Fatalf("runToken --help: %v", err)
	}
	if !strings.Contains(stdout.String(), "usage: chatctl token --user ID") || stderr.Len() != 0 {
		t.Errorf("help: stdout %q, stderr %q; want usage on stdout only", stdout.String(), stderr.String())
	}
	if strings.Contains(stdout.String(), jwtauth.DevJWTSecret) {
		t.Error("help text contains the development secret")
	}
}
