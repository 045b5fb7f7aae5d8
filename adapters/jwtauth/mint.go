package jwtauth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/parleychat/parley/domain"
)

// reservedClaims are the claims Mint writes itself; extra may not set them.
var reservedClaims = []string{"token_type", "exp", "iat", "jti", DefaultUserIDClaim}

// Mint returns an HS256 access token shaped like those of
// djangorestframework-simplejwt: header {"alg":"HS256","typ":"JWT"} and
// claims "token_type": "access", "exp" (now+ttl) and "iat" (now) in whole
// seconds, a random 32-hex-digit "jti", and "user_id". The user id is written
// as a JSON number when it is a decimal integer (as simplejwt writes Django's
// integer primary keys, so the Django service accepts the token too) and as
// a string otherwise.
//
// extra adds claims ("roles", "iss", "aud", ...); it may not set the claims
// above. secret must be at least MinSecretLength bytes; it is never put in
// an error. Errors have code domain.EINVALID.
func Mint(secret []byte, userID string, ttl time.Duration, now time.Time, extra map[string]any) (string, error) {
	switch {
	case len(secret) < MinSecretLength:
		return "", domain.Errorf(domain.EINVALID, "mint token: secret is shorter than %d bytes", MinSecretLength)
	case strings.TrimSpace(userID) == "":
		return "", domain.Errorf(domain.EINVALID, "mint token: user id is empty")
	case ttl <= 0:
		return "", domain.Errorf(domain.EINVALID, "mint token: ttl %v is not positive", ttl)
	}
	claims := jwt.MapClaims{}
	for k, v := range extra {
		if slices.Contains(reservedClaims, k) {
			return "", domain.Errorf(domain.EINVALID, "mint token: extra claim %q is set by Mint itself", k)
		}
		claims[k] = v
	}
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", fmt.Errorf("mint token: random jti: %w", err)
	}
	claims["token_type"] = "access"
	claims["exp"] = now.Add(ttl).Unix()
	claims["iat"] = now.Unix()
	claims["jti"] = hex.EncodeToString(jti[:])
	claims[DefaultUserIDClaim] = userIDClaimValue(userID)

	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("mint token: sign: %w", err)
	}
	return token, nil
}

// userIDClaimValue returns id as an int64 when it is the canonical decimal
// form of one, and as the string otherwise.
func userIDClaimValue(id string) any {
	if n, err := strconv.ParseInt(id, 10, 64); err == nil && strconv.FormatInt(n, 10) == id {
		return n
	}
	return id
}

// DefaultDevTokenTTL is how long a DevIssuer's tokens last by default.
const DefaultDevTokenTTL = 12 * time.Hour

// DevIssuer mints tokens signed with DevJWTSecret for anyone who asks: the
// chat page's development login. Wire it only into a server that verifies
// with DevJWTSecret, where anyone can mint tokens anyway.
type DevIssuer struct {
	// TTL is each token's lifetime; default DefaultDevTokenTTL.
	TTL time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// DevToken returns a token for userID and when it expires.
func (d DevIssuer) DevToken(_ context.Context, userID string) (string, time.Time, error) {
	ttl, now := d.TTL, time.Now
	if ttl <= 0 {
		ttl = DefaultDevTokenTTL
	}
	if d.Now != nil {
		now = d.Now
	}
	at := now()
	tok, err := Mint([]byte(DevJWTSecret), userID, ttl, at, nil)
	if err != nil {
		return "", time.Time{}, err
	}
	return tok, time.Unix(at.Add(ttl).Unix(), 0), nil // exp is whole seconds
}
