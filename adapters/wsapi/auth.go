package wsapi

import (
	"context"
	"encoding/base64"
	"net/http"
	"strings"

	"github.com/gorilla/websocket"

	"github.com/parleychat/parley/domain"
)

// authenticate finds the caller's one credential: a ticket, an
// Authorization header, a bearer.<token> subprotocol, or ?token= (the
// forerunner's way). More than one is refused (4401), a ticket among them
// used up all the same: a ticket is spent by the first connection attempt
// that presents it, whatever happens to the connection, for whichever room
// it was presented to (TicketRedeemer). A socket of kind audit refuses
// tickets before redeeming them: tickets are the owners' for the chat
// channel, and spending one would only refuse the socket anyway.
func (g *Gateway) authenticate(ctx context.Context, r *http.Request, kind string, roomID int64) (domain.Principal, error) {
	q := r.URL.Query()
	var (
		header = r.Header.Get("Authorization")
		creds  = len(q["ticket"]) + len(q["token"]) + len(r.Header.Values("Authorization"))
		token  string
		sub    string
		hasSub bool
	)
	for _, p := range websocket.Subprotocols(r) {
		if enc, ok := strings.CutPrefix(p, "bearer."); ok {
			sub, hasSub = enc, true
			creds++
		}
	}
	if q.Has("ticket") {
		if kind == kindAudit {
			return domain.Principal{}, errAuditTicket
		}
		if g.d.Tickets == nil {
			return domain.Principal{}, domain.Errorf(domain.EUNAUTHORIZED, "tickets are not enabled")
		}
		p, err := g.d.Tickets.Redeem(ctx, q.Get("ticket"), roomID)
		if err == nil && creds > 1 {
			return domain.Principal{}, errManyCredentials
		}
		return p, err
	}
	switch {
	case creds == 0:
		return domain.Principal{}, errMissingCredential
	case creds > 1:
		return domain.Principal{}, errManyCredentials
	case header != "":
		scheme, rest, _ := strings.Cut(header, " ")
		if !strings.EqualFold(scheme, "Bearer") {
			return domain.Principal{}, domain.Errorf(domain.EUNAUTHORIZED, "the Authorization header must be Bearer <token>")
		}
		token = strings.TrimSpace(rest)
	case hasSub:
		b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(sub, "="))
		if err != nil {
			return domain.Principal{}, domain.Errorf(domain.EUNAUTHORIZED, "bearer subprotocol is not base64url")
		}
		token = string(b)
	default:
		token = q.Get("token")
	}
	if token == "" {
		return domain.Principal{}, errMissingCredential
	}
	return g.d.Auth.Verify(ctx, token)
}

// Refusals of authenticate: their messages are the close reasons.
var (
	errMissingCredential = domain.Errorf(domain.EUNAUTHORIZED, "%s", discMissingCredential.reason)
	errManyCredentials   = domain.Errorf(domain.EUNAUTHORIZED, "%s", discManyCredentials.reason)
)
