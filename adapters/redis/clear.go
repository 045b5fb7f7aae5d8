package redis

import (
	"context"
	"fmt"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

// Clear deletes every memory key of the Memory's generation (memories,
// owners and checkpoints of every name): the pinned one, or the one live
// now. It is for tests, and for a rebuild into a generation that held an
// earlier attempt. It returns how many keys it deleted.
func (m *Memory) Clear(ctx context.Context) (int, error) {
	base, err := m.resolveBase(ctx)
	if err != nil {
		return 0, fmt.Errorf("redis memory: clear: %w", err)
	}
	return deleteMatching(ctx, m.client, globEscape(base+"memory:")+"*")
}

// deleteMatching unlinks the keys matching a SCAN pattern and returns how
// many it deleted.
func deleteMatching(ctx context.Context, client goredis.UniversalClient, pattern string) (int, error) {
	deleted := 0
	var cursor uint64
	for {
		keys, next, err := client.Scan(ctx, cursor, pattern, 500).Result()
		if err != nil {
			return deleted, fmt.Errorf("redis memory: clear %s: %w", pattern, err)
		}
		if len(keys) > 0 {
			n, err := client.Unlink(ctx, keys...).Result()
			if err != nil {
				return deleted, fmt.Errorf("redis memory: clear %s: %w", pattern, err)
			}
			deleted += int(n)
		}
		if cursor = next; cursor == 0 {
			return deleted, nil
		}
	}
}

// globEscape escapes the glob metacharacters of a key prefix for SCAN MATCH.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
