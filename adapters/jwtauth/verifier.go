package jwtauth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"github.com/parleychat/parley/domain"
)

// Verifier checks bearer tokens and returns the principal they
// authenticate. It is safe for concurrent use.
type Verifier struct {
	cfg    Config
	secret []byte
	parser *jwt.Parser
	jwks   keyfunc.Keyfunc // nil without JWKSURL
	// stopJWK cancels the child of New's ctx that the JWK Set refresh runs
	// under. New calls it when it fails; otherwise New's ctx ends it.
	stopJWK context.CancelFunc
}

// New validates cfg and returns a Verifier.
//
// With cfg.JWKSURL set, New fetches the JWK Set once (failing if it cannot,
// or if the set holds no usable key) and starts keyfunc's background
// goroutine that refreshes it every cfg.JWKSRefreshInterval. ctx owns that
// goroutine: it runs until ctx is cancelled, so pass the server's lifetime
// context, not a request's. The goroutine belongs to keyfunc and cannot be
// waited for; it returns promptly once ctx is done.
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	v := &Verifier{
		cfg:    cfg,
		secret: bytes.Clone(cfg.Secret),
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(slices.Clone(cfg.Algorithms)),
		jwt.WithJSONNumber(),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(cfg.Now),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	v.parser = jwt.NewParser(opts...)

	if cfg.JWKSURL != "" {
		if err := v.startJWKS(ctx); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// startJWKS fetches the JWK Set and starts its background refresh, bound to
// a child of ctx so that a failed start leaves no goroutine behind.
func (v *Verifier) startJWKS(ctx context.Context) error {
	cfg := v.cfg
	url := redactURL(cfg.JWKSURL)
	jctx, cancel := context.WithCancel(ctx)
	noErrorOnFirstFetch := false
	kf, err := keyfunc.NewDefaultOverrideCtx(jctx, []string{cfg.JWKSURL}, keyfunc.Override{
		HTTPTimeout:               cfg.JWKSFetchTimeout,
		NoErrorReturnFirstHTTPReq: &noErrorOnFirstFetch,
		RateLimitWaitMax:          cfg.JWKSUnknownKIDWait,
		RefreshInterval:           cfg.JWKSRefreshInterval,
		RefreshUnknownKID:         rate.NewLimiter(rate.Every(cfg.JWKSRefreshRateLimit), 1),
		RefreshErrorHandlerFunc: func(string) func(context.Context, error) {
			return func(ctx context.Context, err error) {
				cfg.Logger.WarnContext(ctx, "jwtauth: refresh JWK Set failed; keeping the keys already known",
					"jwks_url", url, "error", err)
			}
		},
	})
	if err != nil {
		cancel()
		return fmt.Errorf("jwtauth: fetch JWK Set from %s: %w", url, err)
	}
	keys, err := kf.Storage().KeyReadAll(jctx)
	if err == nil && len(keys) == 0 {
		err = errors.New("the set holds no key this program can use")
	}
	if err != nil {
		cancel()
		return fmt.Errorf("jwtauth: read JWK Set from %s: %w", url, err)
	}
	v.jwks = kf
	v.stopJWK = cancel
	return nil
}

// Verify checks token (the bare token, without a "Bearer " prefix) and
// returns the principal it authenticates. ctx bounds any JWK Set fetch a
// token with an unknown key id causes.
//
// Every failure is a *domain.Error with code domain.EUNAUTHORIZED whose
// message is a short, client-safe reason, possibly wrapped together with
// the underlying cause for logs. The token never appears in the error.
func (v *Verifier) Verify(ctx context.Context, token string) (domain.Principal, error) {
	switch {
	case token == "":
		return domain.Principal{}, unauthorized("token missing", nil)
	case len(token) > v.cfg.MaxTokenLength:
		return domain.Principal{}, unauthorized("token too long", nil)
	}

	kctx := ctx
	if v.jwks != nil {
		var cancel context.CancelFunc
		kctx, cancel = context.WithTimeout(ctx, v.cfg.JWKSUnknownKIDWait)
		defer cancel()
	}
	claims := jwt.MapClaims{}
	parsed, err := v.parser.ParseWithClaims(token, claims, v.keyfunc(kctx))
	if err != nil {
		return domain.Principal{}, v.parseFailure(parsed, claims, err)
	}
	return v.principal(claims, parsed.Method.Alg())
}

// errNoKey means the token's algorithm family has no key configured; it
// cannot happen with a validated Config, whose allow-list only names
// algorithms it has keys for.
var errNoKey = errors.New("no key configured for this algorithm")

// errKeyNotFound marks a failed JWK Set lookup: an unknown "kid" even after
// a refresh, a refresh that was rate limited or timed out, or a key whose
// "alg" or "use" does not fit the token.
var errKeyNotFound = errors.New("signing key not found in the JWK Set")

// errSymmetricJWK refuses symmetric ("oct") keys from the JWK Set: HMAC
// tokens are verified with Secret only.
var errSymmetricJWK = errors.New("the JWK Set returned a symmetric key for a public-key algorithm")

// keyfunc picks the verification key by algorithm family, so that a key of
// one family is never used with an algorithm of the other.
func (v *Verifier) keyfunc(ctx context.Context) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		if _, ok := t.Method.(*jwt.SigningMethodHMAC); ok {
			if len(v.secret) == 0 {
				return nil, errNoKey
			}
			return v.secret, nil
		}
		if v.jwks == nil {
			return nil, errNoKey
		}
		key, err := v.jwks.KeyfuncCtx(ctx)(t)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errKeyNotFound, err)
		}
		switch k := key.(type) {
		case []byte:
			return nil, errSymmetricJWK
		case jwt.VerificationKeySet:
			k.Keys = slices.DeleteFunc(k.Keys, func(key jwt.VerificationKey) bool {
				_, symmetric := key.([]byte)
				return symmetric
			})
			return k, nil
		}
		return key, nil
	}
}

// parseFailure turns an error from the jwt parser into an EUNAUTHORIZED
// error with the most useful client-safe reason.
func (v *Verifier) parseFailure(t *jwt.Token, claims jwt.MapClaims, err error) error {
	var alg string
	if t != nil && t.Method != nil {
		alg = t.Method.Alg() // a registered algorithm name, never token text
	}
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return unauthorized("token malformed", err)
	case alg != "" && !slices.Contains(v.cfg.Algorithms, alg):
		return unauthorized("algorithm "+alg+" not allowed", nil)
	case errors.Is(err, jwt.ErrTokenUnverifiable) && alg == "":
		return unauthorized("algorithm missing or not supported", nil)
	case errors.Is(err, errKeyNotFound):
		return unauthorized("signing key not found", err)
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return unauthorized("signing key unavailable", err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return unauthorized("signature invalid", err)
	case errors.Is(err, jwt.ErrTokenExpired):
		return unauthorized("token expired", nil)
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return unauthorized("token not valid yet", nil)
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return unauthorized("token issued in the future", nil)
	case errors.Is(err, jwt.ErrInvalidType):
		return unauthorized("token has a malformed time, issuer or audience claim", err)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing) && claims["exp"] == nil:
		return unauthorized("token has no expiry", nil)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer),
		errors.Is(err, jwt.ErrTokenRequiredClaimMissing) && v.cfg.Issuer != "" && claims["iss"] == nil:
		return unauthorized("issuer mismatch", nil)
	case errors.Is(err, jwt.ErrTokenInvalidAudience),
		errors.Is(err, jwt.ErrTokenRequiredClaimMissing) && v.cfg.Audience != "":
		return unauthorized("audience mismatch", nil)
	default:
		return unauthorized("token invalid", err)
	}
}

// principal checks the claims simplejwt compatibility needs and builds the
// principal of a token signed with alg. The registered claims are already
// verified.
func (v *Verifier) principal(claims jwt.MapClaims, alg string) (domain.Principal, error) {
	if tt, ok := claims["token_type"]; ok {
		switch tt {
		case "access":
		case "refresh":
			return domain.Principal{}, unauthorized("token is a refresh token", nil)
		default:
			return domain.Principal{}, unauthorized("token is not an access token", nil)
		}
	}
	userID, err := userIDOf(claims[v.cfg.userIDClaim(alg)])
	if err != nil {
		return domain.Principal{}, err
	}
	roles, err := rolesOf(claims[v.cfg.RoleClaim])
	if err != nil {
		return domain.Principal{}, err
	}
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil { // unreachable: the parser requires a valid exp
		return domain.Principal{}, unauthorized("token has no expiry", err)
	}
	return domain.Principal{UserID: userID, Roles: roles, ExpiresAt: exp.Time}, nil
}

// userIDOf accepts a non-blank JSON string, kept as is, or a JSON integer,
// written in decimal: simplejwt writes Django's integer primary keys as
// numbers and UUID keys as strings.
func userIDOf(v any) (string, error) {
	switch id := v.(type) {
	case nil:
		return "", unauthorized("token has no user id", nil)
	case string:
		if strings.TrimSpace(id) == "" {
			return "", unauthorized("token user id is empty", nil)
		}
		return id, nil
	case json.Number:
		n, err := strconv.ParseInt(id.String(), 10, 64)
		if err != nil {
			return "", unauthorized("token user id is not an integer or a string", nil)
		}
		return strconv.FormatInt(n, 10), nil
	default:
		return "", unauthorized("token user id is not an integer or a string", nil)
	}
}

// rolesOf accepts an absent claim (no roles), a string (one role) or an
// array of strings.
func rolesOf(v any) ([]string, error) {
	switch r := v.(type) {
	case nil:
		return nil, nil
	case string:
		if r == "" {
			return nil, nil
		}
		return []string{r}, nil
	case []any:
		roles := make([]string, 0, len(r))
		for _, e := range r {
			s, ok := e.(string)
			if !ok || s == "" {
				return nil, unauthorized("token roles are not strings", nil)
			}
			roles = append(roles, s)
		}
		if len(roles) == 0 {
			return nil, nil
		}
		return roles, nil
	default:
		return nil, unauthorized("token roles are not a string or an array of strings", nil)
	}
}

// unauthorized returns an EUNAUTHORIZED error whose client-safe message is
// reason, wrapping cause (if any) for logs. Callers never pass the token, and
// no cause from the parser or keyfunc contains it.
func unauthorized(reason string, cause error) error {
	e := domain.Errorf(domain.EUNAUTHORIZED, "%s", reason)
	if cause == nil {
		return e
	}
	return fmt.Errorf("%w: %w", e, cause)
}
