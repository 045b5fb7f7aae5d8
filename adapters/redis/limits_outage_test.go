package redis_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/adapters/redis"
	"github.com/parleychat/parley/adapters/redis/redistest"
	"github.com/parleychat/parley/adapters/userlimit"
	"github.com/parleychat/parley/domain/domaintest"
)

// TestLimiterOverAnOutageOfRedis: with its Redis down a replica keeps the
// limits itself, quickly and with one warning; once Redis is back (empty:
// a restart without persistence) the limits are shared again and the
// connections held meanwhile are counted there again.
func TestLimiterOverAnOutageOfRedis(t *testing.T) {
	srv := redistest.StartServer(t)
	rdb, err := redis.NewClient(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	store := redis.NewLimits(rdb, redis.LimitsConfig{Prefix: "t:"})
	var logs domaintest.SyncBuffer
	cfg := userlimit.LimiterConfig{
		Rates:           map[userlimit.Kind]userlimit.Rate{userlimit.Requests: {PerMinute: 60, Burst: 2}},
		MaxConnsPerUser: 1, Heartbeat: 50 * time.Millisecond, Retry: 100 * time.Millisecond,
	}
	l := userlimit.NewLimiter(cfg, userlimit.LimiterDeps{Rates: store, Leases: store, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	ctx := t.Context()
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- l.Run(rctx) }()
	t.Cleanup(func() { stop(); <-done })

	if ok, _ := l.Take(ctx, userlimit.Requests, "42"); !ok {
		t.Fatal("first request refused")
	}
	srv.Stop()
	began := time.Now()
	var got []bool
	for range 3 {
		ok, _ := l.Take(ctx, userlimit.Requests, "42")
		got = append(got, ok)
	}
	if took := time.Since(began); took > time.Second {
		t.Errorf("three requests took %v with Redis down, want the store's timeout at most once", took)
	}
	if got[0] != true || got[2] != false {
		t.Errorf("requests with Redis down: %v, want the per-process burst of 2, then refused", got)
	}
	release, ok := l.Hold(ctx, "42")
	if !ok {
		t.Fatal("a connection with Redis down refused")
	}
	defer release()
	if n := strings.Count(logs.String(), "shared limits unavailable"); n != 1 {
		t.Errorf("%d warnings, want 1:\n%s", n, logs.String())
	}

	srv.Start(t) // empty: no persistence
	domaintest.WaitUntil(t, "the limits to be shared again", 10*time.Second, func() bool { return strings.Contains(logs.String(), "shared limits restored") })
	// The connection held through the outage counts in Redis again: a
	// second one, as another replica would ask for it, is refused.
	other := redis.NewLimits(rdb, redis.LimitsConfig{Prefix: "t:"})
	domaintest.WaitUntil(t, "the heartbeat to re-register the connection", 10*time.Second, func() bool {
		ok, err := other.Acquire(ctx, "42", "other/1", 1)
		if ok {
			_ = other.Release(ctx, "42", "other/1")
		}
		return err == nil && !ok
	})
}
