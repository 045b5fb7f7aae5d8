package redis_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parleychat/parley/adapters/redis"
	"github.com/parleychat/parley/adapters/redis/redistest"
)

// twoReplicas returns two Limits over separate clients of the test Redis,
// sharing a prefix of the test's own, as two chatd processes would.
func twoReplicas(t *testing.T, ttl time.Duration) (*redis.Limits, *redis.Limits) {
	t.Helper()
	a, b := redistest.Client(t), redistest.Client(t)
	prefix := redistest.Prefix(t, a)
	cfg := redis.LimitsConfig{Prefix: prefix, LeaseTTL: ttl}
	return redis.NewLimits(a, cfg), redis.NewLimits(b, cfg)
}

func TestLimitsRateAcrossReplicas(t *testing.T) {
	a, b := twoReplicas(t, 0)
	ctx := t.Context()
	var allowed int
	var wait time.Duration
	for i := range 10 {
		l := a
		if i%2 == 1 {
			l = b
		}
		ok, w, err := l.Allow(ctx, "requests:42", 60, 4) // one a second, bursts of 4
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			allowed++
		} else {
			wait = w
		}
	}
	if allowed != 4 {
		t.Errorf("%d of 10 requests across two replicas allowed, want the burst of 4", allowed)
	}
	if wait <= 0 || wait > time.Second {
		t.Errorf("retry after %v, want at most the 1 s a token takes", wait)
	}
	if ok, _, err := a.Allow(ctx, "requests:43", 60, 4); !ok || err != nil {
		t.Errorf("another user: %v, %v; want allowed", ok, err)
	}
	// A rate below one a minute is kept as such.
	if ok, _, _ := a.Allow(ctx, "slow:1", 0.5, 1); !ok {
		t.Error("the first of a slow rate refused")
	}
	if ok, w, _ := b.Allow(ctx, "slow:1", 0.5, 1); ok || w < time.Minute {
		t.Errorf("the second of 0.5 a minute: %v, retry after %v; want refused for about 2 minutes", ok, w)
	}
}

func TestLimitsConnectionsAcrossReplicas(t *testing.T) {
	a, b := twoReplicas(t, 0)
	ctx := t.Context()
	// 20 connection attempts race for 5 slots on two replicas.
	var got atomic.Int64
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			l := a
			if i%2 == 1 {
				l = b
			}
			ok, err := l.Acquire(ctx, "42", fmt.Sprintf("r%d/%d", i%2, i), 5)
			if err != nil {
				t.Error(err)
			}
			if ok {
				got.Add(1)
			}
		})
	}
	wg.Wait()
	if got.Load() != 5 {
		t.Fatalf("%d of 20 racing connections admitted, want 5", got.Load())
	}
	if ok, _ := a.Acquire(ctx, "42", "late", 5); ok {
		t.Error("a sixth connection admitted")
	}
	// Releasing one frees its slot for the other replica.
	held := ""
	for i := range 20 {
		if err := a.Release(ctx, "42", fmt.Sprintf("r%d/%d", i%2, i)); err != nil {
			t.Fatal(err)
		}
		held = fmt.Sprintf("r%d/%d", i%2, i)
		if ok, _ := b.Acquire(ctx, "42", "after-release", 5); ok {
			break
		}
	}
	if held == "" {
		t.Error("no release freed a slot")
	}
	// Acquiring a lease held already is not a second connection.
	if ok, _ := b.Acquire(ctx, "42", "after-release", 5); !ok {
		t.Error("re-acquiring a held lease refused")
	}
}

// TestLimitsLeasesOfADeadReplicaExpire: a replica that dies stops
// refreshing its leases, and they stop counting after the TTL; the
// leases of one that lives are refreshed, and re-added when Redis lost
// them.
func TestLimitsLeasesOfADeadReplicaExpire(t *testing.T) {
	const ttl = 400 * time.Millisecond
	a, b := twoReplicas(t, ttl)
	ctx := t.Context()
	for _, lease := range []string{"a/1", "a/2"} {
		if ok, err := a.Acquire(ctx, "42", lease, 2); !ok || err != nil {
			t.Fatalf("acquire %s: %v, %v", lease, ok, err)
		}
	}
	if ok, _ := b.Acquire(ctx, "42", "b/1", 2); ok {
		t.Fatal("b admitted a third connection")
	}
	time.Sleep(ttl + 200*time.Millisecond) // a died: no refresh
	if ok, err := b.Acquire(ctx, "42", "b/1", 2); !ok || err != nil {
		t.Fatalf("after a's leases expired: %v, %v; want admitted", ok, err)
	}
	// b lives: its refreshes keep its lease past the TTL.
	for range 4 {
		time.Sleep(ttl / 2)
		if err := b.Refresh(ctx, map[string][]string{"42": {"b/1"}}); err != nil {
			t.Fatal(err)
		}
	}
	if ok, _ := a.Acquire(ctx, "42", "a/3", 1); ok {
		t.Error("b's refreshed lease expired")
	}
	// A refresh re-adds a lease Redis lost.
	if err := b.Release(ctx, "42", "b/1"); err != nil {
		t.Fatal(err)
	}
	if err := b.Refresh(ctx, map[string][]string{"42": {"b/1"}}); err != nil {
		t.Fatal(err)
	}
	if ok, _ := a.Acquire(ctx, "42", "a/4", 1); ok {
		t.Error("the refresh did not re-add the lost lease")
	}
}
