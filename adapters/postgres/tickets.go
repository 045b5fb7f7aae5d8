package postgres

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/domain"
)

// DefaultTicketTTL is how long a ticket stays valid when NewTickets is given
// no TTL.
const DefaultTicketTTL = 30 * time.Second

// ticketBytes is the entropy of a ticket: 32 random bytes, 43 characters
// of base64url.
const ticketBytes = 32

// maxTicketLen bounds what Redeem hashes and looks up; a real ticket is
// base64.RawURLEncoding.EncodedLen(ticketBytes) characters long.
const maxTicketLen = 64

// ErrTicketRefused is what Redeem returns for a ticket that is unknown,
// expired, already used or issued for another room. One error for all of
// them, so that a caller learns nothing about which.
var ErrTicketRefused = domain.Errorf(domain.EUNAUTHORIZED, "ticket invalid, expired or already used")

// Tickets issues and redeems WebSocket tickets: random, single-use,
// short-lived credentials bound to a principal and a room, stored in
// ws_tickets as their SHA-256 only. It is safe for concurrent use, also
// across processes sharing the database.
type Tickets struct {
	pool   *pgxpool.Pool
	ttl    time.Duration
	random io.Reader
	now    func() time.Time
}

// NewTickets returns Tickets over a migrated database. ttl is how long a
// ticket is valid (DefaultTicketTTL, 30s, when zero or negative); random is
// the source of tickets (crypto/rand.Reader when nil); now is the clock
// used for both issuing and redeeming (time.Now when nil).
func NewTickets(pool *pgxpool.Pool, ttl time.Duration, random io.Reader, now func() time.Time) *Tickets {
	if ttl <= 0 {
		ttl = DefaultTicketTTL
	}
	if random == nil {
		random = rand.Reader
	}
	if now == nil {
		now = time.Now
	}
	return &Tickets{pool: pool, ttl: ttl, random: random, now: now}
}

// Issue stores a new ticket for p and roomID and returns it with the time
// it expires: the TTL from now, or p.ExpiresAt when the principal's token
// expires sooner. The caller must have checked that p may use the room.
func (t *Tickets) Issue(ctx context.Context, p domain.Principal, roomID int64) (_ string, _ time.Time, err error) {
	defer markOutage(&err)
	if p.UserID == "" {
		return "", time.Time{}, fmt.Errorf("issue ticket for room %d: no user", roomID)
	}
	var b [ticketBytes]byte
	if _, err := io.ReadFull(t.random, b[:]); err != nil {
		return "", time.Time{}, fmt.Errorf("issue ticket for room %d: random: %w", roomID, err)
	}
	ticket := base64.RawURLEncoding.EncodeToString(b[:])
	now := t.now()
	expires := now.Add(t.ttl)
	var tokenExpires *time.Time
	if !p.ExpiresAt.IsZero() {
		tokenExpires = &p.ExpiresAt
		if p.ExpiresAt.Before(expires) {
			expires = p.ExpiresAt
		}
	}
	if !expires.After(now) {
		return "", time.Time{}, domain.Errorf(domain.EUNAUTHORIZED, "token expired")
	}
	roles := p.Roles
	if roles == nil {
		roles = []string{}
	}
	hash := ticketHash(ticket)
	_, err = t.pool.Exec(ctx,
		`INSERT INTO ws_tickets (hash, user_id, roles, room_id, expires_at, token_expires_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		hash[:], p.UserID, roles, roomID, expires, tokenExpires)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("issue ticket for room %d: %w", roomID, err)
	}
	return ticket, expires, nil
}

// Redeem uses up ticket for roomID and returns the principal it was issued
// to; its ExpiresAt is that of the token the ticket was issued under. A
// ticket redeems at most once, even when several requests race for it.
// Unknown, expired, reused and wrong-room tickets all fail with
// ErrTicketRefused (code unauthorized). Any attempt uses the ticket up,
// a wrong-room one too: the first presentation spends it.
func (t *Tickets) Redeem(ctx context.Context, ticket string, roomID int64) (_ domain.Principal, err error) {
	defer markOutage(&err)
	if ticket == "" || len(ticket) > maxTicketLen {
		return domain.Principal{}, ErrTicketRefused
	}
	hash := ticketHash(ticket)
	var (
		p            domain.Principal
		tokenExpires *time.Time
		issuedFor    int64
		expires      time.Time
	)
	err = t.pool.QueryRow(ctx,
		`DELETE FROM ws_tickets WHERE hash = $1 RETURNING user_id, roles, token_expires_at, room_id, expires_at`,
		hash[:]).Scan(&p.UserID, &p.Roles, &tokenExpires, &issuedFor, &expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return domain.Principal{}, ErrTicketRefused
	}
	if err != nil {
		return domain.Principal{}, fmt.Errorf("redeem ticket for room %d: %w", roomID, err)
	}
	if issuedFor != roomID || !expires.After(t.now()) {
		return domain.Principal{}, ErrTicketRefused
	}
	if len(p.Roles) == 0 {
		p.Roles = nil // as domain.Principal documents: nil when none
	}
	if tokenExpires != nil {
		p.ExpiresAt = *tokenExpires
	}
	return p, nil
}

// Sweep deletes expired tickets and returns how many it deleted. Redeem
// never accepts an expired ticket, so sweeping only reclaims space; run it
// every minute or so.
func (t *Tickets) Sweep(ctx context.Context) (int64, error) {
	tag, err := t.pool.Exec(ctx, `DELETE FROM ws_tickets WHERE expires_at <= $1`, t.now())
	if err != nil {
		return 0, fmt.Errorf("sweep tickets: %w", err)
	}
	return tag.RowsAffected(), nil
}

func ticketHash(ticket string) [sha256.Size]byte { return sha256.Sum256([]byte(ticket)) }
