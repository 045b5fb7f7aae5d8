// Package redistest gives each test a client of the test Redis and a key
// prefix of its own, whose keys are deleted when the test ends.
//
// The server comes from PARLEY_TEST_REDIS_URL (default
// redis://127.0.0.1:6379/0), which `make test` brings up. Tests fail, not
// skip, when it cannot be reached: Redis is a real dependency of the suite.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/parleychat/parley/adapters/redis"
)

// DefaultURL is the server `make test` starts.
const DefaultURL = "redis://127.0.0.1:6379/0"

// URL returns the URL of the server tests use.
func URL() string {
	if u := os.Getenv("PARLEY_TEST_REDIS_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// Client returns a client of the test server, checked with a PING and
// closed in t.Cleanup.
func Client(t testing.TB) *goredis.Client {
	t.Helper()
	c, err := redis.NewClient(URL())
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("redistest: cannot reach Redis: %v\n(run `make test` or .ci/services, which start Redis, or set PARLEY_TEST_REDIS_URL)", err)
	}
	return c
}

// Prefix returns a key prefix no other test uses, and deletes every key
// under it in t.Cleanup, with the rate limits' keys under "rate:" and it
// (github.com/go-redis/redis_rate puts its own prefix first).
func Prefix(t testing.TB, c *goredis.Client) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "parley-test-" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, pattern := range []string{prefix + "*", "rate:" + prefix + "*"} {
			var cursor uint64
			for {
				keys, next, err := c.Scan(ctx, cursor, pattern, 500).Result()
				if err != nil {
					t.Errorf("redistest: clean up %s: %v", pattern, err)
					return
				}
				if len(keys) > 0 {
					c.Unlink(ctx, keys...)
				}
				if cursor = next; cursor == 0 {
					break
				}
			}
		}
	})
	return prefix
}
