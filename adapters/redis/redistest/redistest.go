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
	"errors"
	"fmt"
	"os"
	"strings"
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

// Holds reports whether any key under prefix holds text: its name, its
// DUMP (the stored form) or its values as read (a DUMP may compress a
// long string, hiding what it holds).
func Holds(t testing.TB, c *goredis.Client, prefix, text string) bool {
	t.Helper()
	ctx := context.Background()
	iter := c.Scan(ctx, 0, prefix+"*", 500).Iterator()
	for iter.Next(ctx) {
		dump, err := c.Dump(ctx, iter.Val()).Result()
		if errors.Is(err, goredis.Nil) {
			continue // expired or deleted meanwhile
		}
		if err != nil {
			t.Fatalf("DUMP %s: %v", iter.Val(), err)
		}
		if strings.Contains(dump, text) || strings.Contains(iter.Val(), text) || strings.Contains(values(t, c, iter.Val()), text) {
			t.Logf("redis key %s holds %q", iter.Val(), text)
			return true
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("SCAN %s*: %v", prefix, err)
	}
	return false
}

// values returns key's values as one string, whatever its type.
func values(t testing.TB, c *goredis.Client, key string) string {
	t.Helper()
	ctx := context.Background()
	var (
		v   any
		err error
	)
	switch typ := c.Type(ctx, key).Val(); typ {
	case "string":
		v, err = c.Get(ctx, key).Result()
	case "hash":
		v, err = c.HGetAll(ctx, key).Result()
	case "list":
		v, err = c.LRange(ctx, key, 0, -1).Result()
	case "set":
		v, err = c.SMembers(ctx, key).Result()
	case "zset":
		v, err = c.ZRange(ctx, key, 0, -1).Result()
	case "stream":
		v, err = c.XRange(ctx, key, "-", "+").Result()
	}
	if err != nil && !errors.Is(err, goredis.Nil) {
		t.Fatalf("read %s: %v", key, err)
	}
	return fmt.Sprint(v)
}
