package httpapi

import (
	"math"
	"net/http"
	"strconv"

	"github.com/parleychat/parley/adapters/userlimit"
	"github.com/parleychat/parley/domain"
)

// limit answers 429 rate_limited, with Retry-After, to a user over their
// request budget (Config.RequestsPerMinute and RequestBurst). It runs
// after authenticate, which names the user.
func (s *Server) limit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ok, wait := s.limits.Take(r.Context(), userlimit.Requests, principalFrom(r.Context()).UserID); !ok {
			secs := int(math.Ceil(wait.Seconds()))
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			writeError(w, r, domain.Errorf(domain.ERATELIMITED,
				"too many requests: at most %g a minute (bursts of %d); retry in %d s", s.cfg.RequestsPerMinute, s.cfg.RequestBurst, secs))
			return
		}
		next.ServeHTTP(w, r)
	})
}
