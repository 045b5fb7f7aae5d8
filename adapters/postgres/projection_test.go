package postgres_test

import (
	"testing"

	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/adapters/postgres/pgtest"
	"github.com/parleychat/parley/projections"
	"github.com/parleychat/parley/projections/projectiontest"
)

// TestChatLogProjection runs the read models' suite over the ChatLog, in
// a fresh database per test.
func TestChatLogProjection(t *testing.T) {
	projectiontest.RunProjectionTests(t, func(t *testing.T) projectiontest.Subject {
		pool := pgtest.NewPool(t, 12)
		store := postgres.NewStore(pool, postgres.StoreConfig{})
		t.Cleanup(func() { store.Close() })
		return projectiontest.Subject{
			Store: store,
			Rebuild: func(t *testing.T, dryRun bool) projections.Rebuildable {
				rb, err := postgres.NewChatLogRebuild(pool, postgres.ChatLogRebuildConfig{DryRun: dryRun})
				if err != nil {
					t.Fatal(err)
				}
				return rb
			},
			Corrupt: func(t *testing.T) {
				tag, err := pool.Exec(t.Context(), `UPDATE chat_logs SET text = text || ' (edited)'
					WHERE (room_id, id) = (SELECT room_id, id FROM chat_logs ORDER BY room_id, seq LIMIT 1)`)
				if err != nil || tag.RowsAffected() != 1 {
					t.Fatalf("corrupt the chat log: %v, %d rows", err, tag.RowsAffected())
				}
			},
		}
	})
}
