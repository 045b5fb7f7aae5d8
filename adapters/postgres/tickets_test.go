package postgres_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/adapters/postgres/pgtest"
	"github.com/parleychat/parley/domain"
)

// clock is a settable clock for Tickets.
type clock struct{ t atomic.Pointer[time.Time] }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.set(t)
	return c
}
func (c *clock) set(t time.Time)     { c.t.Store(&t) }
func (c *clock) now() time.Time      { return *c.t.Load() }
func (c *clock) add(d time.Duration) { c.set(c.now().Add(d)) }

var ticketEpoch = time.Date(2025, 11, 24, 20, 47, 3, 0, time.UTC)

func newTickets(t *testing.T) (*postgres.Tickets, *clock) {
	t.Helper()
	c := newClock(ticketEpoch)
	return postgres.NewTickets(pgtest.NewPool(t, 0), 0, nil, c.now), c
}

var alice = domain.Principal{UserID: "alice", Roles: []string{"user", "auditor"}, ExpiresAt: ticketEpoch.Add(time.Hour)}

func wantRefused(t *testing.T, what string, p domain.Principal, err error) {
	t.Helper()
	if code := domain.ErrorCode(err); code != domain.EUNAUTHORIZED {
		t.Errorf("%s: principal %+v, err %v (code %q); want code unauthorized", what, p, err, code)
	}
}

func TestTicketIssueAndRedeem(t *testing.T) {
	tickets, _ := newTickets(t)
	ticket, expires, err := tickets.Issue(t.Context(), alice, 42)
	if err != nil {
		t.Fatal(err)
	}
	if raw, err := base64.RawURLEncoding.DecodeString(ticket); err != nil || len(raw) != 32 {
		t.Errorf("ticket %q: not 32 bytes of base64url (%d bytes, %v)", ticket, len(raw), err)
	}
	if want := ticketEpoch.Add(postgres.DefaultTicketTTL); !expires.Equal(want) {
		t.Errorf("expires at %v, want %v (the default TTL)", expires, want)
	}
	got, err := tickets.Redeem(t.Context(), ticket, 42)
	if err != nil {
		t.Fatalf("redeem: %v", err)
	}
	if diff := cmp.Diff(alice, got, cmp.Comparer(time.Time.Equal)); diff != "" {
		t.Errorf("redeemed principal (-want +got):\n%s", diff)
	}
}

func TestTicketStoresOnlyItsHash(t *testing.T) {
	pool := pgtest.NewPool(t, 0)
	tickets := postgres.NewTickets(pool, time.Minute, nil, newClock(ticketEpoch).now)
	ticket, _, err := tickets.Issue(t.Context(), alice, 42)
	if err != nil {
		t.Fatal(err)
	}
	var hash []byte
	var row string
	if err := pool.QueryRow(t.Context(), `SELECT hash, t::text FROM ws_tickets t`).Scan(&hash, &row); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256([]byte(ticket))
	if diff := cmp.Diff(want[:], hash); diff != "" {
		t.Errorf("stored hash (-sha256(ticket) +stored):\n%s", diff)
	}
	// Neither the ticket nor its bytes (bytea prints as hex) are stored.
	for _, s := range []string{ticket, hex.EncodeToString(mustDecode(t, ticket))} {
		if strings.Contains(row, s) {
			t.Errorf("the stored row %q holds the ticket itself", row)
		}
	}
}

func TestTicketRefusals(t *testing.T) {
	tests := []struct {
		name string
		// do issues and redeems as needed and returns the last redeem's result.
		do func(t *testing.T, tk *postgres.Tickets, c *clock) (domain.Principal, error)
	}{
		{"reused", func(t *testing.T, tk *postgres.Tickets, c *clock) (domain.Principal, error) {
			ticket := issue(t, tk, alice, 42)
			if _, err := tk.Redeem(t.Context(), ticket, 42); err != nil {
				t.Fatalf("first redeem: %v", err)
			}
			return tk.Redeem(t.Context(), ticket, 42)
		}},
		{"wrong room", func(t *testing.T, tk *postgres.Tickets, c *clock) (domain.Principal, error) {
			return tk.Redeem(t.Context(), issue(t, tk, alice, 42), 43)
		}},
		{"expired", func(t *testing.T, tk *postgres.Tickets, c *clock) (domain.Principal, error) {
			ticket := issue(t, tk, alice, 42)
			c.add(postgres.DefaultTicketTTL)
			return tk.Redeem(t.Context(), ticket, 42)
		}},
		{"expired with its token", func(t *testing.T, tk *postgres.Tickets, c *clock) (domain.Principal, error) {
			p := alice
			p.ExpiresAt = c.now().Add(5 * time.Second) // before the ticket's 30s
			ticket := issue(t, tk, p, 42)
			c.add(5 * time.Second)
			return tk.Redeem(t.Context(), ticket, 42)
		}},
		{"unknown", func(t *testing.T, tk *postgres.Tickets, c *clock) (domain.Principal, error) {
			issue(t, tk, alice, 42)
			return tk.Redeem(t.Context(), base64.RawURLEncoding.EncodeToString(make([]byte, 32)), 42)
		}},
		{"empty", func(t *testing.T, tk *postgres.Tickets, c *clock) (domain.Principal, error) {
			return tk.Redeem(t.Context(), "", 42)
		}},
		{"overlong", func(t *testing.T, tk *postgres.Tickets, c *clock) (domain.Principal, error) {
			return tk.Redeem(t.Context(), string(make([]byte, 4096)), 42)
		}},
	}
	tickets, c := newTickets(t) // one database; each case uses fresh tickets
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c.set(ticketEpoch)
			p, err := tc.do(t, tickets, c)
			wantRefused(t, tc.name, p, err)
			if !errors.Is(err, postgres.ErrTicketRefused) {
				t.Errorf("err = %v, want ErrTicketRefused (one error for every refusal)", err)
			}
		})
	}
}

// TestTicketWrongRoomUsesItUp: a ticket is spent by the first attempt
// that presents it, whichever room it names (docs/protocol.md §2), so a
// ticket that leaked with its URL cannot be tried against rooms.
func TestTicketWrongRoomUsesItUp(t *testing.T) {
	tickets, _ := newTickets(t)
	ticket := issue(t, tickets, alice, 42)
	p, err := tickets.Redeem(t.Context(), ticket, 7)
	wantRefused(t, "wrong room", p, err)
	p, err = tickets.Redeem(t.Context(), ticket, 42)
	wantRefused(t, "the right room after a wrong-room attempt", p, err)
}

func TestTicketExpiryCappedByToken(t *testing.T) {
	tickets, c := newTickets(t)
	p := alice
	p.ExpiresAt = c.now().Add(10 * time.Second)
	_, expires, err := tickets.Issue(t.Context(), p, 42)
	if err != nil {
		t.Fatal(err)
	}
	if !expires.Equal(p.ExpiresAt) {
		t.Errorf("ticket expires at %v, want the token's expiry %v", expires, p.ExpiresAt)
	}
	p.ExpiresAt = c.now().Add(-time.Second)
	if _, _, err := tickets.Issue(t.Context(), p, 42); domain.ErrorCode(err) != domain.EUNAUTHORIZED {
		t.Errorf("issue under an expired token: err = %v, want code unauthorized", err)
	}
}

func TestTicketNoRolesAndNoExpiry(t *testing.T) {
	tickets, _ := newTickets(t)
	p := domain.Principal{UserID: "bob"}
	got, err := tickets.Redeem(t.Context(), issue(t, tickets, p, 1), 1)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(p, got); diff != "" {
		t.Errorf("principal (-want +got):\n%s", diff)
	}
}

func TestTicketConcurrentRedeem(t *testing.T) {
	tickets, _ := newTickets(t)
	for round := range 5 {
		ticket := issue(t, tickets, alice, 42)
		const n = 16
		var wg sync.WaitGroup
		errs := make([]error, n)
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				_, errs[i] = tickets.Redeem(t.Context(), ticket, 42)
			})
		}
		close(start)
		wg.Wait()
		var ok int
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case domain.ErrorCode(err) != domain.EUNAUTHORIZED:
				t.Errorf("round %d: redeem failed with %v, want success or unauthorized", round, err)
			}
		}
		if ok != 1 {
			t.Errorf("round %d: %d of %d concurrent redeems succeeded, want exactly 1", round, ok, n)
		}
	}
}

func TestTicketSweep(t *testing.T) {
	pool := pgtest.NewPool(t, 0)
	c := newClock(ticketEpoch)
	tickets := postgres.NewTickets(pool, 10*time.Second, nil, c.now)
	old := issue(t, tickets, alice, 1)
	c.add(5 * time.Second)
	fresh := issue(t, tickets, alice, 1)
	c.add(6 * time.Second) // old expired 1s ago; fresh has 4s left
	n, err := tickets.Sweep(t.Context())
	if err != nil || n != 1 {
		t.Fatalf("Sweep = %d, %v; want 1 row deleted", n, err)
	}
	var rows int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM ws_tickets`).Scan(&rows); err != nil || rows != 1 {
		t.Errorf("%d rows left (%v), want 1", rows, err)
	}
	if _, err := tickets.Redeem(t.Context(), fresh, 1); err != nil {
		t.Errorf("redeem the unexpired ticket after a sweep: %v", err)
	}
	p, err := tickets.Redeem(t.Context(), old, 1)
	wantRefused(t, "swept ticket", p, err)
}

func TestTicketIssueRandomFailure(t *testing.T) {
	tickets := postgres.NewTickets(pgtest.NewPool(t, 0), 0, iotest.ErrReader(errors.New("entropy gone")), nil)
	if ticket, _, err := tickets.Issue(t.Context(), alice, 1); err == nil {
		t.Errorf("Issue with a failing random source = %q, want an error", ticket)
	}
}

func issue(t *testing.T, tk *postgres.Tickets, p domain.Principal, roomID int64) string {
	t.Helper()
	ticket, _, err := tk.Issue(t.Context(), p, roomID)
	if err != nil {
		t.Fatalf("issue: %v", err)
	}
	return ticket
}

func mustDecode(t *testing.T, ticket string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(ticket)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
