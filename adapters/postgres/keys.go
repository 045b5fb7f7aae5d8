package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/domain/privacy"
)

var (
	_ privacy.KeyStore  = (*Keys)(nil)
	_ privacy.KeyLister = (*Keys)(nil)
)

// Keys is the table of rooms' wrapped data keys, room_keys (see migration
// 0009). It holds keys whichever event store holds the log.
type Keys struct{ pool *pgxpool.Pool }

// NewKeys returns the key table of a migrated database.
func NewKeys(pool *pgxpool.Pool) *Keys { return &Keys{pool: pool} }

// Get implements privacy.KeyStore.
func (k *Keys) Get(ctx context.Context, room int64) (privacy.WrappedKey, error) {
	w := privacy.WrappedKey{Room: room}
	var kek *string
	err := k.pool.QueryRow(ctx, `SELECT kid, kek_id, wrapped FROM room_keys WHERE room_id = $1`, room).Scan(&w.KID, &kek, &w.Wrapped)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return privacy.WrappedKey{}, privacy.ErrNoKey
	case err != nil:
		return privacy.WrappedKey{}, fmt.Errorf("read room %d's key: %w", room, outage(err))
	case w.Wrapped == nil:
		return privacy.WrappedKey{}, privacy.ErrErased
	}
	w.KEKID = *kek
	return w, nil
}

// Create implements privacy.KeyStore: the first writer's key wins.
func (k *Keys) Create(ctx context.Context, w privacy.WrappedKey) (privacy.WrappedKey, error) {
	_, err := k.pool.Exec(ctx, `INSERT INTO room_keys (room_id, kid, kek_id, wrapped) VALUES ($1, $2, $3, $4) ON CONFLICT (room_id) DO NOTHING`,
		w.Room, w.KID, w.KEKID, w.Wrapped)
	if err != nil {
		return privacy.WrappedKey{}, fmt.Errorf("store room %d's key: %w", w.Room, outage(err))
	}
	return k.Get(ctx, w.Room)
}

// Destroy implements privacy.KeyStore. The row stays as a tombstone.
func (k *Keys) Destroy(ctx context.Context, room int64, at time.Time) (bool, error) {
	tag, err := k.pool.Exec(ctx, `
		INSERT INTO room_keys (room_id, kid, destroyed_at) VALUES ($1, '', $2)
		ON CONFLICT (room_id) DO UPDATE SET wrapped = NULL, kek_id = NULL, destroyed_at = EXCLUDED.destroyed_at
		WHERE room_keys.wrapped IS NOT NULL`, room, at)
	if err != nil {
		return false, fmt.Errorf("destroy room %d's key: %w", room, outage(err))
	}
	// A tombstone inserted for a room that never had a key also counts 1;
	// it destroyed nothing, but nothing can be read either way.
	return tag.RowsAffected() == 1, nil
}

// Keys implements privacy.KeyLister.
func (k *Keys) Keys(ctx context.Context, after int64, limit int) ([]privacy.WrappedKey, error) {
	rows, err := k.pool.Query(ctx, `SELECT room_id, kid, kek_id, wrapped FROM room_keys WHERE room_id > $1 AND wrapped IS NOT NULL ORDER BY room_id LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list room keys after %d: %w", after, outage(err))
	}
	return scanKeys(rows)
}

// KEKSample implements privacy.KeyLister.
func (k *Keys) KEKSample(ctx context.Context) ([]privacy.WrappedKey, error) {
	rows, err := k.pool.Query(ctx, `SELECT DISTINCT ON (kek_id) room_id, kid, kek_id, wrapped FROM room_keys WHERE wrapped IS NOT NULL ORDER BY kek_id, room_id`)
	if err != nil {
		return nil, fmt.Errorf("sample room keys: %w", outage(err))
	}
	return scanKeys(rows)
}

func scanKeys(rows pgx.Rows) ([]privacy.WrappedKey, error) {
	var out []privacy.WrappedKey
	for rows.Next() {
		var w privacy.WrappedKey
		if err := rows.Scan(&w.Room, &w.KID, &w.KEKID, &w.Wrapped); err != nil {
			return nil, fmt.Errorf("read room keys: %w", err)
		}
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read room keys: %w", outage(err))
	}
	return out, nil
}

// Rewrap implements privacy.KeyLister.
func (k *Keys) Rewrap(ctx context.Context, w privacy.WrappedKey, oldKEKID string) (bool, error) {
	tag, err := k.pool.Exec(ctx, `UPDATE room_keys SET kek_id = $3, wrapped = $4 WHERE room_id = $1 AND kid = $2 AND kek_id = $5 AND wrapped IS NOT NULL`,
		w.Room, w.KID, w.KEKID, w.Wrapped, oldKEKID)
	if err != nil {
		return false, fmt.Errorf("rewrap room %d's key: %w", w.Room, outage(err))
	}
	return tag.RowsAffected() == 1, nil
}

// outage marks err as an outage when it is one (see markOutage).
func outage(err error) error {
	markOutage(&err)
	return err
}
