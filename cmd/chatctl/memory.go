package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/parleychat/parley/adapters/redis"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
	"github.com/parleychat/parley/projections"
)

// defaultRedisURL is the memory's Redis when PARLEY_REDIS_URL is unset.
const defaultRedisURL = "redis://127.0.0.1:6379/0"

// redisSettings is where the memory projection lives: PARLEY_REDIS_URL and
// PARLEY_REDIS_PREFIX, as chatd reads them.
type redisSettings struct {
	url, prefix string
}

func redisSettingsFrom(getenv func(string) string) redisSettings {
	s := redisSettings{url: getenv("PARLEY_REDIS_URL"), prefix: getenv("PARLEY_REDIS_PREFIX")}
	if s.url == "" {
		s.url = defaultRedisURL
	}
	if s.prefix == "" {
		s.prefix = redis.DefaultPrefix
	}
	return s
}

// redisClient opens the memory's Redis on first use; closeEnv closes it.
func (e *projectionEnv) redisClient() (*goredis.Client, error) {
	if e.rdb != nil {
		return e.rdb, nil
	}
	c, err := redis.NewClient(e.redis.url)
	if err != nil {
		return nil, fmt.Errorf("PARLEY_REDIS_URL: %w", err)
	}
	e.rdb = c
	return c, nil
}

// withRedis sets where the memory lives and returns closeEnv extended to
// close its client.
func (e *projectionEnv) withRedis(getenv func(string) string, closeEnv func()) func() {
	e.redis = redisSettingsFrom(getenv)
	return func() {
		if e.rdb != nil {
			_ = e.rdb.Close()
		}
		closeEnv()
	}
}

// liveMemory is the live memory projection, following the live
// generation as chatd's does.
func (e *projectionEnv) liveMemory() (*redis.Memory, error) {
	c, err := e.redisClient()
	if err != nil {
		return nil, err
	}
	// A room whose memory vanished from Redis is folded again from the log.
	return redis.NewMemory(c, redis.MemoryConfig{Prefix: e.redis.prefix, Log: e.store, Logger: e.log})
}

func (e *projectionEnv) memoryRebuild(opts rebuildOptions) (*redis.MemoryRebuild, error) {
	c, err := e.redisClient()
	if err != nil {
		return nil, err
	}
	return redis.NewMemoryRebuild(c, redis.MemoryRebuildConfig{Prefix: e.redis.prefix, DryRun: opts.dryRun, Logger: e.log})
}

// memoryStatus is the memory's rows of `projections status`.
func memoryStatus(ctx context.Context, env *projectionEnv, head domain.Position) ([]projectionRow, error) {
	rb, err := env.memoryRebuild(rebuildOptions{})
	if err != nil {
		return nil, err
	}
	copies, err := rb.Copies(ctx)
	if err != nil {
		return nil, fmt.Errorf("memory (Redis %s): %w", env.redis.prefix, err)
	}
	var rows []projectionRow
	for _, c := range copies {
		name, role := redis.DefaultMemoryName, c.Role
		switch c.Role {
		case "shadow":
			name, role = name+"_next", "shadow"
		case "dryrun":
			name, role = name+"_dryrun", "shadow"
		case "old":
			name = name + "_old"
		}
		if c.Generation != "" {
			name += " (" + c.Generation + ")"
		}
		row := projectionRow{found: c.Found, role: role, behind: -1}
		row.Name, row.Position, row.LastError = name, c.Checkpoint, c.LastError
		if role != "old" {
			if row.behind, err = env.store.CountEvents(ctx, c.Checkpoint, head, room.StreamPrefix); err != nil {
				return nil, err
			}
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// memoryTarget rebuilds the Redis memory into a new generation.
type memoryTarget struct {
	rb *redis.MemoryRebuild
}

func (t *memoryTarget) Name() string { return t.rb.Live().Name() }

func (t *memoryTarget) Prepare(ctx context.Context) (bool, func(), error) {
	release, err := t.rb.Lock(ctx)
	if err != nil {
		return false, nil, err
	}
	resumed, err := t.rb.Prepare(ctx)
	if err != nil {
		release()
		if errors.Is(err, redis.ErrOldCopyExists) {
			return false, nil, fmt.Errorf("%w, or pass --drop-old", err)
		}
		return false, nil, err
	}
	return resumed, release, nil
}

func (t *memoryTarget) Projection() projections.Projection { return t.rb.Shadow() }

func (t *memoryTarget) LiveCheckpoint(ctx context.Context) (domain.Position, error) {
	return t.rb.Live().Checkpoint(ctx)
}

func (t *memoryTarget) Compare(ctx context.Context, catchUp catchUpFunc) (rebuildDiff, error) {
	d, err := t.rb.Compare(ctx, catchUp)
	if err != nil {
		return rebuildDiff{}, err
	}
	part := func(what string, k redis.KeyDiff) diffPart {
		return diffPart{What: what, Live: k.Live, Rebuilt: k.Shadow, Differing: k.Differing, Missing: k.Missing, Extra: k.Extra, Examples: strings.Join(k.Examples, ", ")}
	}
	return rebuildDiff{Live: d.Live, Rebuilt: d.Shadow, Parts: []diffPart{part("rooms' memories", d.Memories), part("room owners", d.Owners)}}, nil
}

func (t *memoryTarget) Swap(ctx context.Context, catchUp catchUpFunc) (swapped, error) {
	res, err := t.rb.Swap(ctx, catchUp)
	prefix := t.rb.Live().Prefix()
	old := fmt.Sprintf("generation %q (keys %s%s:memory:*)", res.Old, prefix, res.Old)
	if res.Old == "" {
		old = "the keys " + prefix + "memory:* (the layout older than generations)"
	}
	return swapped{Live: res.Live, Rebuilt: res.Shadow, Attempts: res.Attempts, Old: old}, err
}

func (t *memoryTarget) DropOld(ctx context.Context) (bool, error) { return t.rb.DropOld(ctx) }

func (t *memoryTarget) Discard(ctx context.Context) error { return t.rb.Discard(ctx) }
