package postgres

import (
	"context"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// IdleRooms returns up to limit rooms, oldest activity first, whose last
// message (or creation, when they have none) is before before and whose
// content is not erased yet: their data key is live, or they have none
// (rooms written before encryption). The ChatLog and room_keys must share
// the database, as chatd runs them.
func (c *ChatLog) IdleRooms(ctx context.Context, before time.Time, limit int) (_ []int64, err error) {
	defer markOutage(&err)
	rows, err := c.pool.Query(ctx, c.sql.idleRooms, before, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: list rooms idle since %s: %w", before.Format(time.RFC3339), err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("postgres: list rooms idle since %s: %w", before.Format(time.RFC3339), err)
	}
	return ids, nil
}

// idleRoomsSQL is ChatLog.IdleRooms's statement ({rooms} and {chat_logs}
// filled in).
const idleRoomsSQL = `SELECT r.id FROM {rooms} r
LEFT JOIN room_keys k ON k.room_id = r.id
CROSS JOIN LATERAL (SELECT max(c.updated_at) AS at FROM {chat_logs} c WHERE c.room_id = r.id) m
WHERE (k.room_id IS NULL OR k.wrapped IS NOT NULL) AND coalesce(m.at, r.created_at) < $1
ORDER BY coalesce(m.at, r.created_at), r.id
LIMIT $2`

// TryAdvisoryLock takes the session advisory lock named name (its key an
// FNV-64a hash of the name) on a
// connection of its own, without waiting: ok is false when another
// session holds it. unlock releases it (ending the session if the unlock
// fails, which releases it too).
func TryAdvisoryLock(ctx context.Context, pool *pgxpool.Pool, name string) (unlock func(), ok bool, err error) {
	defer markOutage(&err)
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("postgres: lock %q: %w", name, err)
	}
	h := fnv.New64a()
	h.Write([]byte(name))
	key := int64(h.Sum64())
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&ok); err != nil {
		conn.Release()
		return nil, false, fmt.Errorf("postgres: lock %q: %w", name, err)
	}
	if !ok {
		conn.Release()
		return nil, false, nil
	}
	return func() {
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, `SELECT pg_advisory_unlock($1)`, key); err != nil {
			conn.Conn().Close(uctx)
		}
		conn.Release()
	}, true, nil
}
