package domain

import (
	"slices"
	"time"
)

// Principal is the authenticated caller of a request or WebSocket session,
// as established by a verified access token.
type Principal struct {
	// UserID identifies the user. It is always a non-empty string, even when
	// the issuer wrote it as a number (Django's integer primary keys).
	UserID string
	// Roles are the roles the token grants, in token order; nil when none.
	Roles []string
	// ExpiresAt is when the token stops being valid. A long-lived session
	// (a WebSocket) should end or re-authenticate by then.
	ExpiresAt time.Time
}

// AuditorRole is the token role that may read any room, read-only, when
// an adapter's configuration names no other.
const AuditorRole = "auditor"

// HasRole reports whether the principal holds role. Comparison is exact and
// case-sensitive.
func (p Principal) HasRole(role string) bool { return slices.Contains(p.Roles, role) }
