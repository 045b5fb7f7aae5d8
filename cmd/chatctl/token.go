package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/parleychat/parley/adapters/jwtauth"
	"github.com/parleychat/parley/cmd/internal/cli"
)

// maxTokenTTL is the longest lifetime chatctl token issues: a token cannot
// be revoked, so operators get at most a month.
const maxTokenTTL = 30 * 24 * time.Hour

const tokenUsage = `usage: chatctl token --user ID [--ttl 1h] [--roles auditor,...] [--issuer ISS] [--audience AUD]

Prints an HS256 access token shaped like djangorestframework-simplejwt's, and
nothing else, on stdout:  TOKEN=$(chatctl token --user 42)

Environment:
  PARLEY_JWT_SECRET   HS256 signing secret, at least 32 bytes (default: the
                      public development secret, with a warning)
`

// runToken implements `chatctl token`: it mints an access token for a user
// with the secret from PARLEY_JWT_SECRET (or the development secret, with a
// warning on stderr) and prints only the token, and a newline, on stdout.
// Minting is local, so ctx is unused; it keeps the shape every command has.
func runToken(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("token")
	user := fs.String("user", "", "user id to put in the token's user_id claim (required)")
	ttl := fs.Duration("ttl", time.Hour, "lifetime of the token, at most 720h (30 days)")
	roles := fs.String("roles", "", "comma-separated roles for the roles claim, e.g. auditor")
	issuer := fs.String("issuer", "", "iss claim, when the server checks one")
	audience := fs.String("audience", "", "aud claim, when the server checks one")
	if err := cli.Parse(fs, args, "chatctl token", tokenUsage, stdout); err != nil {
		return helpOK(err)
	}

	var problems []error
	if fs.NArg() > 0 {
		problems = append(problems, fmt.Errorf("token: unexpected argument %q (everything is a flag; see chatctl token --help)", fs.Arg(0)))
	}
	if strings.TrimSpace(*user) == "" {
		problems = append(problems, errors.New("token: --user is required (the user id, e.g. --user 42)"))
	}
	if *ttl <= 0 || *ttl > maxTokenTTL {
		problems = append(problems, fmt.Errorf("token: --ttl %v is out of range: want more than 0 and at most %v (30 days)", *ttl, maxTokenTTL))
	}
	roleList, err := parseRoles(*roles)
	if err != nil {
		problems = append(problems, err)
	}
	signer, err := newTokenSigner(getenv)
	if err != nil {
		problems = append(problems, fmt.Errorf("token: %w", err))
	}
	if len(problems) > 0 {
		return cli.Usage(errors.Join(problems...))
	}

	extra := map[string]any{}
	if len(roleList) > 0 {
		extra[jwtauth.DefaultRoleClaim] = roleList
	}
	if *issuer != "" {
		extra["iss"] = *issuer
	}
	if *audience != "" {
		extra["aud"] = *audience
	}
	token, err := signer.mint(*user, *ttl, extra, stderr)
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	if _, err := fmt.Fprintln(stdout, token); err != nil {
		return fmt.Errorf("token: write: %w", err)
	}
	return nil
}

// tokenSigner mints access tokens for chatctl token and chatctl chat
// --user, with PARLEY_JWT_SECRET, or with the public development secret
// when it is unset.
type tokenSigner struct {
	secret string // "" for the development secret
}

// newTokenSigner reads PARLEY_JWT_SECRET, refusing one too short for the
// server to accept.
func newTokenSigner(getenv func(string) string) (tokenSigner, error) {
	secret := getenv("PARLEY_JWT_SECRET")
	if secret != "" && len(secret) < jwtauth.MinSecretLength {
		return tokenSigner{}, fmt.Errorf("PARLEY_JWT_SECRET is shorter than %d bytes", jwtauth.MinSecretLength)
	}
	return tokenSigner{secret: secret}, nil
}

// mint signs a token for user, valid for ttl from now, with the extra
// claims. Signing with the development secret is announced on stderr.
func (s tokenSigner) mint(user string, ttl time.Duration, extra map[string]any, stderr io.Writer) (string, error) {
	secret := s.secret
	if secret == "" {
		secret = jwtauth.DevJWTSecret
		fmt.Fprintln(stderr, "chatctl: warning: PARLEY_JWT_SECRET is not set; signing with the public development secret (jwtauth.DevJWTSecret), which only a development server accepts")
	}
	return jwtauth.Mint([]byte(secret), user, ttl, time.Now(), extra)
}

// parseRoles splits a comma-separated list, trimming spaces; empty input
// means no roles.
func parseRoles(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var roles []string
	for r := range strings.SplitSeq(s, ",") {
		r = strings.TrimSpace(r)
		if r == "" {
			return nil, fmt.Errorf("token: --roles %q has an empty role", s)
		}
		roles = append(roles, r)
	}
	return roles, nil
}
