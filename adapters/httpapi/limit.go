package httpapi

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/parleychat/parley/domain"
)

// limiter is a token bucket per user for the /api routes: a user may make
// burst requests at once and perMinute a minute after that.
type limiter struct {
	perSecond, burst float64
	now              func() time.Time

	mu      sync.Mutex
	buckets map[string]*apiBucket
}

type apiBucket struct {
	tokens float64
	last   time.Time
}

// maxIdleBuckets is how many users' buckets the limiter keeps before it
// forgets the full ones (users idle long enough to have their whole burst
// back, whose bucket is the same as a new one).
const maxIdleBuckets = 10000

func newLimiter(perMinute float64, burst int, now func() time.Time) *limiter {
	return &limiter{perSecond: perMinute / 60, burst: float64(burst), now: now, buckets: map[string]*apiBucket{}}
}

// take spends one of user's tokens. When there is none it returns false
// and how long until there is one.
func (l *limiter) take(user string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if len(l.buckets) >= maxIdleBuckets {
		l.forgetFull(now)
	}
	b := l.buckets[user]
	if b == nil {
		b = &apiBucket{tokens: l.burst, last: now}
		l.buckets[user] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.perSecond)
	b.last = now
	if b.tokens < 1 {
		return false, time.Duration((1 - b.tokens) / l.perSecond * float64(time.Second))
	}
	b.tokens--
	return true, 0
}

func (l *limiter) forgetFull(now time.Time) {
	for user, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.perSecond >= l.burst {
			delete(l.buckets, user)
		}
	}
}

// limit answers 429 rate_limited, with Retry-After, to a user over their
// request budget (Config.RequestsPerMinute and RequestBurst). It runs
// after authenticate, which names the user.
func (s *Server) limit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ok, wait := s.limiter.take(principalFrom(r.Context()).UserID); !ok {
			secs := int(math.Ceil(wait.Seconds()))
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			writeError(w, r, domain.Errorf(domain.ERATELIMITED,
				"too many requests: at most %g a minute (bursts of %g); retry in %d s", s.limiter.perSecond*60, s.limiter.burst, secs))
			return
		}
		next.ServeHTTP(w, r)
	})
}
