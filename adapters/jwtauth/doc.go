// Package jwtauth verifies the bearer tokens that authenticate Parley's
// WebSocket and REST APIs and turns them into a domain.Principal.
//
// It accepts the access tokens the Django service issued with
// djangorestframework-simplejwt (HS256 over the shared SIGNING_KEY, a
// "user_id" claim that is a number or a string, "token_type": "access"), and
// tokens from an identity provider that publishes its RS256/ES256 keys as a
// JWK Set (fetched and refreshed with github.com/MicahParks/keyfunc/v3),
// whose user id is their "sub" claim. Config.UserIDClaim names one claim
// for both instead.
// Parsing and claim checks are github.com/golang-jwt/jwt/v5's, run with an
// algorithm allow-list, a required "exp", leeway for clock skew, and a
// length limit checked before anything is parsed.
//
// Every verification failure is a *domain.Error with code
// domain.EUNAUTHORIZED and a short message that is safe to send to the
// client ("token expired", "signature invalid"). Neither the token nor the
// secret ever appears in an error or a log line; wrap token-bearing values in
// Redacted before logging them.
//
// Mint issues simplejwt-shaped HS256 access tokens for development and for
// operators (chatctl token).
package jwtauth
