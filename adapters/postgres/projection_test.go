package postgres_test

import (
	"bytes"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/adapters/postgres/pgtest"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/privacy"
	"github.com/parleychat/parley/projections"
	"github.com/parleychat/parley/projections/projectiontest"
)

// TestChatLogProjection runs the read models' suite over the ChatLog, in
// a fresh database per test.
func TestChatLogProjection(t *testing.T) {
	projectiontest.RunProjectionTests(t, func(t *testing.T) projectiontest.Subject { return chatLogSubject(t, false) })
}

// TestSealedChatLogProjection runs it as chatd runs the ChatLog: the log's
// text sealed under the rooms' keys (in room_keys), and the ChatLog's too.
// Nothing in the database, the log included, may then hold text in clear.
func TestSealedChatLogProjection(t *testing.T) {
	projectiontest.RunProjectionTests(t, func(t *testing.T) projectiontest.Subject { return chatLogSubject(t, true) })
}

func chatLogSubject(t *testing.T, sealed bool) projectiontest.Subject {
	pool := pgtest.NewPool(t, 12)
	pg := postgres.NewStore(pool, postgres.StoreConfig{})
	t.Cleanup(func() { pg.Close() })
	var store domain.EventStore = pg
	var keys postgres.RoomKeys
	except := []string{"events"}
	if sealed {
		kek, err := privacy.NewKEK(bytes.Repeat([]byte{5}, privacy.KeySize))
		if err != nil {
			t.Fatal(err)
		}
		ring, err := privacy.NewKeyring(postgres.NewKeys(pool), privacy.KEKs{kek}, privacy.KeyringConfig{})
		if err != nil {
			t.Fatal(err)
		}
		store, keys, except = privacy.NewStore(pg, ring), ring, nil
	}
	return projectiontest.Subject{
		Store:  store,
		Sealed: sealed,
		Rebuild: func(t *testing.T, dryRun bool) projections.Rebuildable {
			rb, err := postgres.NewChatLogRebuild(pool, postgres.ChatLogRebuildConfig{DryRun: dryRun, Keys: keys})
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
		Holds: func(t *testing.T, text string) bool { return tablesHold(t, pool, text, except...) },
	}
}

// tablesHold reports whether any row of any table of the database but
// except holds text, in any column (the row as text).
func tablesHold(t *testing.T, pool *pgxpool.Pool, text string, except ...string) bool {
	t.Helper()
	tables := pgtest.Strings(t, pool, `SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`)
	for _, name := range tables {
		if slices.Contains(except, name) {
			continue
		}
		var n int
		q := `SELECT count(*) FROM ` + pgx.Identifier{name}.Sanitize() + ` t WHERE strpos(t::text, $1) > 0`
		if err := pool.QueryRow(t.Context(), q, text).Scan(&n); err != nil {
			t.Fatalf("search %s: %v", name, err)
		}
		if n > 0 {
			t.Logf("table %s holds %q in %d rows", name, text, n)
			return true
		}
	}
	return false
}
