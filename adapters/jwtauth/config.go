package jwtauth

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
)

// DevJWTSecret is the HS256 secret that local development uses when no
// secret is configured (chatctl token falls back to it, with a warning).
// It is public, so it is for local development only: never configure it on a
// server that anyone else can reach.
const DevJWTSecret = "parley-development-secret-change-me-0123456789"

// MinSecretLength is the shortest HMAC secret Config accepts and Mint uses:
// 32 bytes, the HS256 output size (RFC 7518 section 3.2).
const MinSecretLength = 32

// Defaults for the zero values of Config's fields.
const (
	DefaultLeeway               = 30 * time.Second
	DefaultMaxTokenLength       = 4096
	DefaultUserIDClaim          = "user_id" // of HMAC tokens: simplejwt's USER_ID_CLAIM
	DefaultJWKSUserIDClaim      = "sub"     // of tokens verified with JWKS keys: OIDC's subject
	DefaultRoleClaim            = "roles"
	DefaultJWKSRefreshInterval  = time.Hour
	DefaultJWKSRefreshRateLimit = time.Minute
	DefaultJWKSUnknownKIDWait   = 5 * time.Second
	DefaultJWKSFetchTimeout     = 10 * time.Second
)

// Limits Validate enforces on Config.
const (
	maxLeeway             = 5 * time.Minute
	maxJWKSUnknownKIDWait = time.Minute
)

// hmacAlgorithms are verified with Secret; asymmetricAlgorithms with keys
// from the JWK Set. "none" is in neither and is never accepted.
var (
	hmacAlgorithms       = []string{"HS256", "HS384", "HS512"}
	asymmetricAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)

// Config configures a Verifier. The zero value of every field but Secret and
// JWKSURL is a documented default; at least one of Secret and JWKSURL must be
// set. New validates it once.
type Config struct {
	// Secret is the shared HMAC secret of HS256 tokens: for tokens from the
	// Django service, its SIMPLE_JWT["SIGNING_KEY"] (Django's SECRET_KEY
	// unless set). It must be at least MinSecretLength bytes. Nil disables
	// HMAC algorithms. It is never logged or put in an error.
	Secret []byte

	// JWKSURL is the https URL of a JSON Web Key Set holding the public keys
	// of RS256/ES256 tokens (an identity provider's jwks_uri). Plain http is
	// accepted only for loopback hosts. Empty disables public-key algorithms.
	JWKSURL string

	// Algorithms is the allow-list of "alg" header values. Tokens signed
	// with any other algorithm, and always "none", are refused before their
	// key is looked up. Default: HS256 when Secret is set, plus RS256 and
	// ES256 when JWKSURL is set.
	Algorithms []string

	// Issuer, when set, must equal the token's "iss" claim. Empty skips the
	// check (simplejwt sets no issuer unless configured).
	Issuer string

	// Audience, when set, must be one of the token's "aud" values. Empty
	// skips the check.
	Audience string

	// Leeway is the clock skew tolerated when checking "exp", "nbf" and
	// "iat". Default 30s; at most 5m. Claims have one-second precision, so
	// any value below a second (time.Nanosecond, say) means no leeway.
	Leeway time.Duration

	// MaxTokenLength is the longest token, in bytes, that Verify looks at;
	// longer ones are refused before any decoding. Default 4096, well above
	// simplejwt's access tokens (about 250 bytes).
	MaxTokenLength int

	// UserIDClaim names the claim holding the user's id, in every token.
	// Empty means the default of the key that verified the token:
	// "user_id" (simplejwt's USER_ID_CLAIM) for HMAC tokens verified with
	// Secret, "sub" (OIDC's subject, as Keycloak, Auth0 and Entra ID issue
	// it) for tokens verified with a key from JWKSURL.
	UserIDClaim string

	// RoleClaim names the claim holding the user's roles: a string (one
	// role) or an array of strings. Absent means no roles. Default "roles".
	RoleClaim string

	// JWKSRefreshInterval is how often the JWK Set is fetched in the
	// background. Default 1h.
	JWKSRefreshInterval time.Duration

	// JWKSRefreshRateLimit is the shortest time between two fetches of the
	// JWK Set caused by tokens whose "kid" is unknown, so that a stream of
	// tokens with made-up key ids cannot hammer the identity provider; a
	// rotated key is still picked up on its first use when the last such
	// fetch is older than this. Default 1m.
	JWKSRefreshRateLimit time.Duration

	// JWKSUnknownKIDWait bounds how long one Verify may wait, for the rate
	// limit and the fetch, when a token's "kid" is unknown. Past it the
	// token is refused ("signing key not found"). Default 5s; at most 1m.
	JWKSUnknownKIDWait time.Duration

	// JWKSFetchTimeout bounds the first fetch of the JWK Set in New and each
	// background refresh. Default 10s.
	JWKSFetchTimeout time.Duration

	// Logger receives failures of background JWK Set refreshes. Default
	// slog.Default(). Verify itself never logs.
	Logger *slog.Logger

	// Now is the clock used for "exp", "nbf" and "iat". Default time.Now;
	// tests set a fixed clock.
	Now func() time.Time
}

// withDefaults returns c with every zero-valued field set to its default.
func (c Config) withDefaults() Config {
	if c.Algorithms == nil {
		if len(c.Secret) > 0 {
			c.Algorithms = append(c.Algorithms, "HS256")
		}
		if c.JWKSURL != "" {
			c.Algorithms = append(c.Algorithms, "RS256", "ES256")
		}
	}
	if c.Leeway == 0 {
		c.Leeway = DefaultLeeway
	}
	if c.MaxTokenLength == 0 {
		c.MaxTokenLength = DefaultMaxTokenLength
	}
	if c.RoleClaim == "" {
		c.RoleClaim = DefaultRoleClaim
	}
	if c.JWKSRefreshInterval == 0 {
		c.JWKSRefreshInterval = DefaultJWKSRefreshInterval
	}
	if c.JWKSRefreshRateLimit == 0 {
		c.JWKSRefreshRateLimit = DefaultJWKSRefreshRateLimit
	}
	if c.JWKSUnknownKIDWait == 0 {
		c.JWKSUnknownKIDWait = DefaultJWKSUnknownKIDWait
	}
	if c.JWKSFetchTimeout == 0 {
		c.JWKSFetchTimeout = DefaultJWKSFetchTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports every problem with c (after defaults are applied), one
// message per problem, joined with errors.Join. It returns nil when c can
// build a Verifier. Messages never contain the secret.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	problem := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("jwtauth config: "+format, args...))
	}

	if len(c.Secret) == 0 && c.JWKSURL == "" {
		problem("set Secret (HS256 shared secret) or JWKSURL (RS256/ES256 public keys); neither is set")
	}
	if c.JWKSURL != "" {
		if err := checkJWKSURL(c.JWKSURL); err != nil {
			problem("JWKSURL: %v", err)
		}
	}

	if len(c.Algorithms) == 0 && (len(c.Secret) > 0 || c.JWKSURL != "") {
		problem("Algorithms is empty: no token could ever verify")
	}
	usesHMAC, usesJWKS := false, false
	for _, alg := range c.Algorithms {
		switch {
		case slices.Contains(hmacAlgorithms, alg):
			usesHMAC = true
			if len(c.Secret) == 0 {
				problem("algorithm %s needs Secret, which is not set", alg)
			}
		case slices.Contains(asymmetricAlgorithms, alg):
			usesJWKS = true
			if c.JWKSURL == "" {
				problem("algorithm %s needs JWKSURL, which is not set", alg)
			}
		case strings.EqualFold(alg, "none"):
			problem(`algorithm "none" (unsigned tokens) is never allowed`)
		default:
			problem("algorithm %q is not supported (want one of %s)", alg,
				strings.Join(append(slices.Clone(hmacAlgorithms), asymmetricAlgorithms...), ", "))
		}
	}
	if len(c.Secret) > 0 {
		if len(c.Secret) < MinSecretLength {
			problem("Secret is shorter than %d bytes; HMAC secrets must be at least %d random bytes", MinSecretLength, MinSecretLength)
		}
		if !usesHMAC && len(c.Algorithms) > 0 {
			problem("Secret is set but Algorithms allows no HMAC algorithm (HS256, HS384, HS512)")
		}
	}
	if c.JWKSURL != "" && !usesJWKS && len(c.Algorithms) > 0 {
		problem("JWKSURL is set but Algorithms allows no public-key algorithm (RS256, ES256, ...)")
	}

	if c.Leeway < 0 || c.Leeway > maxLeeway {
		problem("Leeway %v is out of range [0, %v]", c.Leeway, maxLeeway)
	}
	if c.MaxTokenLength < 0 {
		problem("MaxTokenLength %d is negative", c.MaxTokenLength)
	}
	if c.JWKSRefreshInterval < 0 {
		problem("JWKSRefreshInterval %v is negative", c.JWKSRefreshInterval)
	}
	if c.JWKSRefreshRateLimit < 0 {
		problem("JWKSRefreshRateLimit %v is negative", c.JWKSRefreshRateLimit)
	}
	if c.JWKSUnknownKIDWait < 0 || c.JWKSUnknownKIDWait > maxJWKSUnknownKIDWait {
		problem("JWKSUnknownKIDWait %v is out of range (0, %v]", c.JWKSUnknownKIDWait, maxJWKSUnknownKIDWait)
	}
	if c.JWKSFetchTimeout < 0 {
		problem("JWKSFetchTimeout %v is negative", c.JWKSFetchTimeout)
	}
	role := c.RoleClaim
	if role == "" {
		role = DefaultRoleClaim
	}
	for _, id := range c.userIDClaims() {
		if id == role {
			problem("UserIDClaim and RoleClaim are both %q", id)
		}
	}
	return errors.Join(errs...)
}

// userIDClaims returns the claims that may hold the user id.
func (c Config) userIDClaims() []string {
	if c.UserIDClaim != "" {
		return []string{c.UserIDClaim}
	}
	return []string{DefaultUserIDClaim, DefaultJWKSUserIDClaim}
}

// userIDClaim returns the claim that holds the user id of a token signed
// with alg.
func (c Config) userIDClaim(alg string) string {
	switch {
	case c.UserIDClaim != "":
		return c.UserIDClaim
	case slices.Contains(hmacAlgorithms, alg):
		return DefaultUserIDClaim
	}
	return DefaultJWKSUserIDClaim
}

// userIDClaimText describes the user id claim for logs.
func (c Config) userIDClaimText() string {
	if c.UserIDClaim != "" {
		return c.UserIDClaim
	}
	return DefaultUserIDClaim + " (HMAC tokens), " + DefaultJWKSUserIDClaim + " (JWKS tokens)"
}

// checkJWKSURL accepts absolute https URLs, and http URLs on loopback hosts
// (local identity providers and tests).
func checkJWKSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return errors.New("not an absolute https URL")
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return fmt.Errorf("%s uses plain http; keys must be fetched over https (http is allowed for loopback hosts only)", u.Redacted())
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// LogValue implements slog.LogValuer: it logs the configuration without the
// secret (only whether one is set).
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Bool("secret_set", len(c.Secret) > 0),
		slog.String("jwks_url", redactURL(c.JWKSURL)),
		slog.Any("algorithms", c.Algorithms),
		slog.String("issuer", c.Issuer),
		slog.String("audience", c.Audience),
		slog.Duration("leeway", c.Leeway),
		slog.Int("max_token_length", c.MaxTokenLength),
		slog.String("user_id_claim", c.userIDClaimText()),
		slog.String("role_claim", c.RoleClaim),
	)
}

// String describes c without the secret, so that printing a Config with fmt
// (%v, %+v) does not leak it.
func (c Config) String() string {
	secret := "unset"
	if len(c.Secret) > 0 {
		secret = redacted
	}
	return fmt.Sprintf("jwtauth.Config{Secret: %s, JWKSURL: %q, Algorithms: %q, Issuer: %q, Audience: %q, Leeway: %v, MaxTokenLength: %d, UserIDClaim: %q, RoleClaim: %q}",
		secret, redactURL(c.JWKSURL), c.Algorithms, c.Issuer, c.Audience, c.Leeway, c.MaxTokenLength, c.userIDClaimText(), c.RoleClaim)
}

// GoString is String, so that %#v does not leak the secret either.
func (c Config) GoString() string { return c.String() }

// redactURL hides any password in a URL.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "[unparsable URL]"
	}
	return u.Redacted()
}
