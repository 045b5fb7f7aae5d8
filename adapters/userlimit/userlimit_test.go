package userlimit

import (
	"strconv"
	"testing"
	"time"
)

func TestTake(t *testing.T) {
	now := time.Unix(0, 0)
	l := New(30, 2, func() time.Time { return now }) // a token every 2s
	for i := range 2 {
		if ok, _ := l.Take("alice"); !ok {
			t.Fatalf("take %d of the burst refused", i+1)
		}
	}
	if ok, wait := l.Take("alice"); ok || wait != 2*time.Second {
		t.Fatalf("over the burst: ok=%v wait=%s, want refused for 2s", ok, wait)
	}
	if ok, _ := l.Take("bob"); !ok {
		t.Error("bob refused: each user has their own bucket")
	}
	now = now.Add(time.Second)
	if ok, wait := l.Take("alice"); ok || wait != time.Second {
		t.Errorf("after 1s: ok=%v wait=%s, want refused for 1s more (a refusal spends nothing)", ok, wait)
	}
	now = now.Add(time.Second)
	if ok, _ := l.Take("alice"); !ok {
		t.Error("after 2s: refused, want the token that came back")
	}
}

// TestForgetsIdleUsers: once there are many, the buckets of users whose
// burst is back are dropped; a user still short of tokens keeps theirs.
func TestForgetsIdleUsers(t *testing.T) {
	now := time.Unix(0, 0)
	l := New(60, 2, func() time.Time { return now })
	l.Take("busy")
	l.Take("busy") // out of tokens
	for i := range maxUsers - 1 {
		l.Take("user-" + strconv.Itoa(i))
	}
	now = now.Add(time.Second) // the others are full again; busy has 1 of 2
	l.Take("newcomer")
	if n := len(l.users); n != 2 {
		t.Errorf("%d buckets after the sweep, want 2 (busy and newcomer)", n)
	}
	if ok, _ := l.Take("busy"); !ok {
		t.Error("busy: refused, want its one token back after 1s")
	}
	if ok, wait := l.Take("busy"); ok || wait != time.Second {
		t.Errorf("busy again: ok=%v wait=%s, want refused for 1s: the sweep must keep its bucket", ok, wait)
	}
}

// TestSweepWaitsForGrowth: a sweep that frees little is not repeated on
// the next Take, which would scan every bucket each time; the next one
// waits until the buckets have doubled.
func TestSweepWaitsForGrowth(t *testing.T) {
	now := time.Unix(0, 0)
	l := New(60, 1, func() time.Time { return now })
	for i := range maxUsers {
		l.Take("user-" + strconv.Itoa(i)) // each out of tokens
	}
	l.Take("newcomer")         // sweeps, and frees nothing
	now = now.Add(time.Second) // every bucket is full again
	l.Take("another")
	if n := len(l.users); n != maxUsers+2 {
		t.Errorf("%d buckets, want %d: the take right after a sweep must not sweep again", n, maxUsers+2)
	}
}
