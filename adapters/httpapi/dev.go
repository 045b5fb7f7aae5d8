package httpapi

import (
	"context"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/parleychat/parley/adapters/wire"
	"github.com/parleychat/parley/domain"
)

// maxDevUserID bounds the user id the development login accepts.
const maxDevUserID = 64

// DevTokenIssuer mints an access token for any user id, for the chat
// page's development login. Only a server running on the public
// development secret wires one (jwtauth.DevIssuer), because anyone could
// mint such tokens anyway; without one, POST /api/dev/token does not
// exist.
type DevTokenIssuer interface {
	DevToken(ctx context.Context, userID string) (token string, expiresAt time.Time, err error)
}

// handleDevToken serves POST /api/dev/token: {"user_id"} is answered 201
// {"token","user_id","expires_at"}, a token for that user.
func handleDevToken(dev DevTokenIssuer, maxBody int64) http.Handler {
	type request struct {
		UserID string `json:"user_id"`
	}
	type response struct {
		Token     string `json:"token"`
		UserID    string `json:"user_id"`
		ExpiresAt string `json:"expires_at"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req request
		if err := decodeJSON(w, r, maxBody, &req); err != nil {
			writeError(w, r, err)
			return
		}
		user := strings.TrimSpace(req.UserID)
		if user == "" || utf8.RuneCountInString(user) > maxDevUserID || strings.ContainsFunc(user, unicode.IsControl) {
			writeError(w, r, domain.Errorf(domain.EINVALID, "user_id must be 1-%d characters, without control characters", maxDevUserID))
			return
		}
		tok, exp, err := dev.DevToken(r.Context(), user)
		if err != nil {
			writeError(w, r, err)
			return
		}
		if ri := infoFrom(r.Context()); ri != nil {
			ri.userID = user
		}
		writeJSON(w, http.StatusCreated, response{Token: tok, UserID: user, ExpiresAt: wire.Time(exp)})
	})
}
