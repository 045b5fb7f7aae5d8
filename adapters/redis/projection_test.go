package redis_test

import (
	"bytes"
	"testing"

	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/adapters/postgres/pgtest"
	"github.com/parleychat/parley/adapters/redis"
	"github.com/parleychat/parley/adapters/redis/redistest"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/privacy"
	"github.com/parleychat/parley/domain/privacy/privacytest"
	"github.com/parleychat/parley/projections"
	"github.com/parleychat/parley/projections/projectiontest"
)

// TestMemoryProjection runs the read models' suite over the Redis memory,
// under a key prefix of its own per test, fed from a fresh Postgres log.
func TestMemoryProjection(t *testing.T) {
	projectiontest.RunProjectionTests(t, func(t *testing.T) projectiontest.Subject { return memorySubject(t, false) })
}

// TestSealedMemoryProjection runs it as chatd runs the memory: the log's
// text sealed under the rooms' keys, and the memory sealed with them.
func TestSealedMemoryProjection(t *testing.T) {
	projectiontest.RunProjectionTests(t, func(t *testing.T) projectiontest.Subject { return memorySubject(t, true) })
}

func memorySubject(t *testing.T, sealed bool) projectiontest.Subject {
	pg := postgres.NewStore(pgtest.NewPool(t, 8), postgres.StoreConfig{})
	t.Cleanup(func() { pg.Close() })
	var store domain.EventStore = pg
	var keys redis.RoomKeys
	if sealed {
		ring := testKeyring(t)
		store, keys = privacy.NewStore(pg, ring), ring
	}
	client := redistest.Client(t)
	prefix := redistest.Prefix(t, client)
	return projectiontest.Subject{
		Store:  store,
		Sealed: sealed,
		Rebuild: func(t *testing.T, dryRun bool) projections.Rebuildable {
			rb, err := redis.NewMemoryRebuild(client, redis.MemoryRebuildConfig{Prefix: prefix, DryRun: dryRun, Keys: keys})
			if err != nil {
				t.Fatal(err)
			}
			return rb
		},
		Corrupt: func(t *testing.T) {
			live, err := redis.NewMemory(client, redis.MemoryConfig{Prefix: prefix, Keys: keys})
			if err != nil {
				t.Fatal(err)
			}
			gen, err := live.Generation(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			base := prefix
			if gen != "" {
				base += gen + ":"
			}
			keys, err := client.Keys(t.Context(), base+"memory:1:*").Result()
			if err != nil || len(keys) != 1 {
				t.Fatalf("room 1's memory key: %q, %v", keys, err)
			}
			if err := client.HSet(t.Context(), keys[0], "summary", "made up").Err(); err != nil {
				t.Fatal(err)
			}
		},
		Holds: func(t *testing.T, text string) bool { return redistest.Holds(t, client, prefix, text) },
	}
}

// testKeyring is a keyring over an in-memory key table.
func testKeyring(t *testing.T) *privacy.Keyring {
	t.Helper()
	kek, err := privacy.NewKEK(bytes.Repeat([]byte{3}, privacy.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	ring, err := privacy.NewKeyring(privacytest.NewMemKeys(), privacy.KEKs{kek}, privacy.KeyringConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return ring
}
