package userlimit

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxUsers is how many users' buckets Limits keeps before it first forgets
// those whose burst is back, which are the same as a new bucket.
const maxUsers = 10000

// Limits allows each user a burst of events at once and perMinute a
// minute after that (see New). It is safe for concurrent use.
type Limits struct {
	every rate.Limit
	burst int
	now   func() time.Time

	mu      sync.Mutex
	users   map[string]*rate.Limiter
	sweepAt int // how many buckets make Take forget the full ones
}

// New returns Limits of perMinute with bursts of burst, on the clock now
// (time.Now when nil).
func New(perMinute float64, burst int, now func() time.Time) *Limits {
	if now == nil {
		now = time.Now
	}
	return &Limits{every: rate.Limit(perMinute / 60), burst: burst, now: now, users: map[string]*rate.Limiter{}, sweepAt: maxUsers}
}

// Take spends one of user's tokens. When there is none it spends nothing
// and returns false and how long until there is one.
func (l *Limits) Take(user string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if len(l.users) >= l.sweepAt {
		for u, lim := range l.users {
			if lim.TokensAt(now) >= float64(l.burst) {
				delete(l.users, u)
			}
		}
		// The next sweep waits until the map has doubled: when most users
		// are short of tokens a sweep frees few, and sweeping again on
		// every Take would scan them all, under the lock, each time.
		l.sweepAt = max(maxUsers, 2*len(l.users))
	}
	lim := l.users[user]
	if lim == nil {
		lim = rate.NewLimiter(l.every, l.burst)
		l.users[user] = lim
	}
	r := lim.ReserveN(now, 1)
	if wait := r.DelayFrom(now); wait > 0 {
		r.CancelAt(now)
		return false, wait
	}
	return true, 0
}
