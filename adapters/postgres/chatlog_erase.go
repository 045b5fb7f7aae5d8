package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/parleychat/parley/domain/chat"
)

var _ chat.OwnedRooms = (*ChatLog)(nil)

// RoomIDsOf implements chat.OwnedRooms: every room owner owns, deleted and
// erased ones included (erasing is idempotent), in id order.
func (c *ChatLog) RoomIDsOf(ctx context.Context, owner string) (_ []int64, err error) {
	defer markOutage(&err)
	rows, err := c.pool.Query(ctx, c.sql.roomIDsOf, owner)
	if err != nil {
		return nil, fmt.Errorf("postgres: list the room ids of %s: %w", owner, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("postgres: list the room ids of %s: %w", owner, err)
	}
	return ids, nil
}
