package chat

import (
	"sync"
	"time"
)

// outageLogEvery is the least time between two warnings about the same
// failing dependency; the failures in between are counted, not logged.
const outageLogEvery = time.Minute

// outage keeps a dependency that fails on every request from flooding the
// log: the first failure is logged, then one line a minute with the count
// of those not logged, and one line when it works again.
type outage struct {
	mu         sync.Mutex
	failing    bool
	logged     time.Time // when the last warning was logged
	suppressed int       // failures since then, not logged
}

// failed records a failure at now. It reports whether to log it and how
// many failures before it were not logged.
func (o *outage) failed(now time.Time) (log bool, suppressed int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.failing && now.Sub(o.logged) < outageLogEvery {
		o.suppressed++
		return false, 0
	}
	o.failing, o.logged = true, now
	suppressed, o.suppressed = o.suppressed, 0
	return true, suppressed
}

// ok records a success. It reports whether the dependency was failing,
// and how many failures were not logged.
func (o *outage) ok() (recovered bool, suppressed int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.failing {
		return false, 0
	}
	suppressed = o.suppressed
	o.failing, o.suppressed = false, 0
	return true, suppressed
}
