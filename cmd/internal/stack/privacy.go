package stack

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/adapters/redis"
	"github.com/parleychat/parley/domain/chat"
	"github.com/parleychat/parley/domain/privacy"
)

// roomKeys is the keyring as each part takes it: all nil when
// conversation text is not encrypted (Config.Plaintext), so no part holds
// a nil *Keyring in a non-nil interface.
type roomKeys struct {
	ring     *privacy.Keyring
	chatlog  postgres.RoomKeys
	memory   redis.RoomKeys
	shredder chat.KeyShredder
}

// openKeys opens the keyring (see openKeyring), unless cfg.Plaintext.
func (s *Server) openKeys(ctx context.Context, cfg *Config) (roomKeys, error) {
	if cfg.Plaintext {
		s.log.Warn("conversation text is stored in plaintext (the benchmark's encryption-off side): erasure is not available")
		return roomKeys{}, nil
	}
	ring, err := openKeyring(ctx, cfg, s.pool, s.log)
	if err != nil {
		return roomKeys{}, fmt.Errorf("the rooms' data keys: %w", err)
	}
	return roomKeys{ring: ring, chatlog: ring, memory: ring, shredder: ring}, nil
}

// openKeyring loads the KEKs (generating the development one when none is
// configured, with a warning) and opens the rooms' data keys in pool's
// room_keys. It fails, before anything is written, when the KEKs cannot
// unwrap the stored keys (a wrong PARLEY_DATA_KEY).
func openKeyring(ctx context.Context, cfg *Config, pool *pgxpool.Pool, log *slog.Logger) (*privacy.Keyring, error) {
	if err := cfg.DataKeys.Load(); err != nil {
		return nil, err
	}
	if cfg.DataKeys.DevPath != "" {
		log.Warn(cfg.DataKeys.DevWarning())
	}
	keys := postgres.NewKeys(pool)
	ring, err := privacy.NewKeyring(keys, cfg.DataKeys.KEKs, privacy.KeyringConfig{})
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := ring.Check(cctx, keys); err != nil {
		return nil, err
	}
	return ring, nil
}

// retentionLock names the advisory lock under which one replica at a time
// erases idle rooms.
const retentionLock = "parley retention"

// retentionFirst is how soon after start the retention job first looks
// for idle rooms (sooner when PARLEY_RETENTION_INTERVAL is shorter).
const retentionFirst = 10 * time.Second

// retain erases rooms idle longer than PARLEY_RETENTION, soon after start
// and then every PARLEY_RETENTION_INTERVAL, on the replica that holds the
// advisory lock, until ctx ends.
func (s *Server) retain(ctx context.Context) {
	every(ctx, min(retentionFirst, s.cfg.RetentionEvery), s.cfg.RetentionEvery, func(ctx context.Context) {
		if err := s.retainOnce(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("retention: erasing idle rooms failed; trying again at the next run", "error", err,
				"retention_interval", s.cfg.RetentionEvery.String())
		}
	})
}

func (s *Server) retainOnce(ctx context.Context) error {
	unlock, ok, err := postgres.TryAdvisoryLock(ctx, s.pool, retentionLock)
	if err != nil || !ok {
		return err // another replica runs it
	}
	defer unlock()
	n, err := s.svc.EraseIdle(ctx, s.chatlog, s.cfg.Retention)
	if n > 0 {
		s.log.Info("retention: erased idle rooms", "rooms", n, "retention", s.cfg.Retention.String())
	}
	if err != nil {
		return fmt.Errorf("after %d rooms: %w", n, err)
	}
	return nil
}
