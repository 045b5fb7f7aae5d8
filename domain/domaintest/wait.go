package domaintest

import (
	"testing"
	"time"
)

// WaitUntil polls cond every 20 ms until it holds, and fails the test
// naming what it waited for when it does not within the given time.
func WaitUntil(t testing.TB, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
