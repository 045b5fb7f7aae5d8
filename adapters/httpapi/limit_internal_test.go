package httpapi

import (
	"strconv"
	"testing"
	"time"
)

// TestLimiterForgetsIdleUsers: the buckets of users whose burst is back
// are dropped once there are many, so the map does not grow with every
// user ever seen; a user still short of tokens keeps their bucket.
func TestLimiterForgetsIdleUsers(t *testing.T) {
	now := time.Unix(0, 0)
	l := newLimiter(60, 2, func() time.Time { return now })
	l.take("busy")
	l.take("busy") // out of tokens
	for i := range maxIdleBuckets - 1 {
		l.take("user-" + strconv.Itoa(i))
	}
	now = now.Add(time.Second) // the others are full again; busy has 1 of 2
	l.take("newcomer")
	if n := len(l.buckets); n != 2 {
		t.Errorf("%d buckets after the sweep, want 2 (busy and newcomer)", n)
	}
	if ok, _ := l.take("busy"); !ok {
		t.Error("busy: refused, want its one token back after 1s")
	}
	if ok, wait := l.take("busy"); ok || wait != time.Second {
		t.Errorf("busy again: ok=%v wait=%s, want refused for 1s: the sweep must keep its bucket", ok, wait)
	}
}
