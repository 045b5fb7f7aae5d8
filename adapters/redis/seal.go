package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/parleychat/parley/domain/privacy"
)

// RoomKeys gives out rooms' data keys (privacy.Keyring).
type RoomKeys interface {
	Key(ctx context.Context, room int64, create bool) (*privacy.Key, error)
}

func memoryAD(room int64, field string) []byte {
	return []byte("redis memory/" + strconv.FormatInt(room, 10) + "/" + field)
}

// sealFields seals a room's memory's summary and buffer under its key
// (MemoryConfig.Keys), so Redis, its RDB and AOF files hold no text. A
// room whose key was destroyed (erased) is written empty and deleted.
// Without Keys it returns them as they are.
func (m *Memory) sealFields(ctx context.Context, room int64, summary, buffer string, deleted bool) (string, string, bool, error) {
	if m.keys == nil {
		return summary, buffer, deleted, nil
	}
	key, err := m.keys.Key(ctx, room, true)
	if errors.Is(err, privacy.ErrErased) {
		return "", "[]", true, nil
	}
	if err != nil {
		return "", "", false, fmt.Errorf("room %d: seal its memory: %w", room, err)
	}
	if summary != "" {
		summary = key.SealText(summary, memoryAD(room, fieldSummary))
	}
	return summary, key.SealText(buffer, memoryAD(room, fieldBuffer)), deleted, nil
}

// openFields opens the sealed fields of a stored memory hash in place.
// Fields written before sealing are read as they are; a room whose key
// was destroyed reads as deleted and empty.
func (m *Memory) openFields(ctx context.Context, room int64, h map[string]string) error {
	if m.keys == nil || len(h) == 0 {
		return nil
	}
	var key *privacy.Key
	for _, f := range []string{fieldSummary, fieldBuffer} {
		env, ok := privacy.ParseEnvelope(h[f])
		if !ok {
			continue
		}
		if key == nil {
			var err error
			key, err = m.keys.Key(ctx, room, false)
			if errors.Is(err, privacy.ErrErased) || errors.Is(err, privacy.ErrNoKey) {
				h[fieldSummary], h[fieldBuffer], h[fieldDeleted] = "", "[]", "1"
				return nil
			}
			if err != nil {
				return fmt.Errorf("open its memory: %w", err)
			}
		}
		p, err := key.Open(env, memoryAD(room, f))
		if err != nil {
			return fmt.Errorf("open its memory's %s: %w", f, err)
		}
		h[f] = string(p)
	}
	return nil
}
