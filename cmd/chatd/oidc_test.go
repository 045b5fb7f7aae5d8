package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/parleychat/parley/adapters/postgres/pgtest"
	"github.com/parleychat/parley/adapters/wsapi"
)

// TestIdentityProviderTokensEndToEnd: chatd configured with an identity
// provider's JWK Set (here served over loopback) accepts its RS256 and
// ES256 access tokens, whose user id is the "sub" claim, as Keycloak,
// Auth0 and Entra ID issue them, on REST and over the WebSocket; and a
// subject is a user: another's room is not theirs.
func TestIdentityProviderTokensEndToEnd(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var keys []jwkset.JWKMarshal
	for _, k := range []struct {
		pub crypto.PublicKey
		kid string
		alg jwkset.ALG
	}{{&rsaKey.PublicKey, "rsa-1", jwkset.AlgRS256}, {&ecKey.PublicKey, "ec-1", jwkset.AlgES256}} {
		jwk, err := jwkset.NewJWKFromKey(k.pub, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: k.kid, ALG: k.alg, USE: jwkset.UseSig}})
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, jwk.Marshal())
	}
	body, err := json.Marshal(jwkset.JWKSMarshal{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(idp.Close)
	const issuer, audience = "https://id.example/realms/parley", "parley"
	c := startChatd(t, pgtest.NewDatabase(t), map[string]string{
		"PARLEY_JWKS_URL":     idp.URL,
		"PARLEY_JWT_ISSUER":   issuer,
		"PARLEY_JWT_AUDIENCE": audience,
	})
	idToken := func(method jwt.SigningMethod, key any, kid, sub string) string {
		tok := jwt.NewWithClaims(method, jwt.MapClaims{
			"iss": issuer, "aud": audience, "sub": sub, "typ": "Bearer", "scope": "openid",
			"exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(),
		})
		tok.Header["kid"] = kid
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	alice := idToken(jwt.SigningMethodRS256, rsaKey, "rsa-1", "f7c3bc1d-808e-4a0b-9a6f-4b2d1f0e9a11")
	bob := idToken(jwt.SigningMethodES256, ecKey, "ec-1", "auth0|64b0c2a9e1")

	id := c.createRoom(t, alice)
	var room struct {
		OwnerID string `json:"owner_id"`
	}
	if code := c.api(t, "GET", "/api/rooms/"+strconv.FormatInt(id, 10), alice, "", &room); code != http.StatusOK || room.OwnerID != "f7c3bc1d-808e-4a0b-9a6f-4b2d1f0e9a11" {
		t.Errorf("GET the room with the RS256 token = %d, owner %q; want 200 and the token's sub", code, room.OwnerID)
	}
	ws := connect(t, c.wsURL(id, "token="+alice))
	if h := readFrame(t, ws); h["type"] != "history" {
		t.Fatalf("first frame %v, want the history", h)
	}
	send(t, ws, map[string]any{"type": "message", "message": "What housing support is there?", "client_id": "8f0e6a1c-0000-4000-8000-000000000021"})
	if fs := readAnswer(t, ws); fs[len(fs)-1]["type"] != "answer" {
		t.Fatalf("last frame %v, want an answer", fs[len(fs)-1])
	}

	bobsRoom := c.createRoom(t, bob)
	expectClose(t, connect(t, c.wsURL(id, "token="+bob)), wsapi.CloseForbidden)
	ws = connect(t, c.wsURL(bobsRoom, "token="+bob))
	if h := readFrame(t, ws); h["type"] != "history" {
		t.Fatalf("ES256 token in its own room: first frame %v, want the history", h)
	}
}
