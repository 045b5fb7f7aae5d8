package stack

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/domain/privacy"
)

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

// retentionEvery is how often the retention job looks for idle rooms.
const retentionEvery = time.Hour

// retain erases rooms idle longer than PARLEY_RETENTION, now and then
// every retentionEvery, on the replica that holds the advisory lock,
// until ctx ends.
func (s *Server) retain(ctx context.Context) {
	t := time.NewTimer(10 * time.Second) // first run soon after start
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		t.Reset(retentionEvery)
		if err := s.retainOnce(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("retention: erasing idle rooms failed; trying again in an hour", "error", err)
		}
	}
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
