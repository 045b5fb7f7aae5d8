package wsapi

import "github.com/gorilla/websocket"

// Close codes of the protocol (docs/protocol.md §8). The codes of RFC 6455
// the gateway sends are gorilla/websocket's constants; the disconnects
// below name every close the gateway makes, code and reason, once.
const (
	CloseUnauthorized = 4401
	CloseForbidden    = 4403
	CloseRateLimited  = 4429
	CloseTooSlow      = 4000
	// CloseUnavailable (1013, "try again later"): the event store is
	// unavailable; the client reconnects with after and hash, with backoff.
	CloseUnavailable = websocket.CloseTryAgainLater
	// CloseRestart (1012, "service restart"): the event log restarted and
	// may have lost its newest events; the client resumes with after and
	// hash, and is told when its position is gone.
	CloseRestart = websocket.CloseServiceRestart
)

// resumeHint ends the reasons of closes after which a client resumes.
const resumeHint = "; reconnect with ?after=<last version seen>&hash=<its hash>"

// disconnect is one way the gateway closes a connection: its close code
// and reason (informative only; clients act on the code). Reasons are at
// most 123 bytes; with adds a detail within that.
type disconnect struct {
	code   int
	reason string
}

// The gateway's disconnects.
var (
	discMissingCredential = disconnect{CloseUnauthorized, "missing token"}
	discManyCredentials   = disconnect{CloseUnauthorized, "more than one credential: send exactly one of ticket, token, Authorization or bearer subprotocol"}
	discUnauthorized      = disconnect{CloseUnauthorized, ""} // the verifier's reason
	discTokenExpired      = disconnect{CloseUnauthorized, "token expired"}
	discNoRole            = disconnect{CloseForbidden, "auditing needs the role "}
	discNoRoom            = disconnect{CloseForbidden, "no such room, or it is not yours"}
	discRoomDeleted       = disconnect{CloseForbidden, "the room was deleted"}
	discTooManyConns      = disconnect{CloseRateLimited, "too many connections"}
	discConnectRate       = disconnect{CloseRateLimited, ""} // the limiter's reason, saying when to retry
	discRateLimited       = disconnect{CloseRateLimited, "rate limited: messages kept coming while limited"}
	discTooSlow           = disconnect{CloseTooSlow, "client too slow" + resumeHint}
	discUnavailable       = disconnect{CloseUnavailable, "event store unavailable" + resumeHint}
	discLogRestarted      = disconnect{CloseRestart, "event log restarted" + resumeHint}
	discShutdown          = disconnect{websocket.CloseGoingAway, "server shutting down" + resumeHint}
	discInternal          = disconnect{websocket.CloseInternalServerErr, "internal error"}
	discViolations        = disconnect{websocket.ClosePolicyViolation, "too many protocol errors; last: "}
	discFrameTooLarge     = disconnect{websocket.CloseMessageTooBig, "frame too large"}
	discInvalidUTF8       = disconnect{websocket.CloseInvalidFramePayloadData, "invalid UTF-8"}
	discNormal            = disconnect{websocket.CloseNormalClosure, ""}
	discGone              = disconnect{websocket.CloseAbnormalClosure, ""} // never sent: the peer is gone
)

// with returns d with detail appended to its reason, cut to fit a close
// frame.
func (d disconnect) with(detail string) disconnect {
	d.reason = truncate(d.reason+detail, 123)
	return d
}

// echo returns the disconnect that mirrors a client's close code.
func echo(code int) disconnect { return disconnect{code: code} }
