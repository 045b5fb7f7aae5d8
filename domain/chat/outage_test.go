package chat

import (
	"testing"
	"time"
)

func TestOutageLogsFirstFailureThenOncePerInterval(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	type step struct {
		at         time.Duration // after t0
		fail       bool
		log        bool // failed: log it; ok: log the recovery
		suppressed int
	}
	steps := []step{
		{at: 0, fail: false, log: false},               // healthy: nothing to say
		{at: time.Second, fail: true, log: true},       // the first failure
		{at: 2 * time.Second, fail: true, log: false},  // within the minute: counted
		{at: 30 * time.Second, fail: true, log: false}, // counted
		{at: 61 * time.Second, fail: true, log: true, suppressed: 2},
		{at: 62 * time.Second, fail: true, log: false},                // counted
		{at: 63 * time.Second, fail: false, log: true, suppressed: 1}, // back: say so once
		{at: 64 * time.Second, fail: false, log: false},
		{at: 65 * time.Second, fail: true, log: true}, // a new outage logs at once
	}
	var o outage
	for i, s := range steps {
		var log bool
		var n int
		if s.fail {
			log, n = o.failed(t0.Add(s.at))
		} else {
			log, n = o.ok()
		}
		if log != s.log || n != s.suppressed {
			t.Errorf("step %d (at %s, fail %v): log %v with %d suppressed, want %v with %d", i, s.at, s.fail, log, n, s.log, s.suppressed)
		}
	}
}
