package main

import (
	"context"
	"fmt"

	goredis "github.com/redis/go-redis/v9"

	"github.com/parleychat/parley/adapters/redis"
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

// redisClient opens the memory's Redis on first use; Close closes it.
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

// liveMemory is the live memory projection, following the live
// generation as chatd's does.
func (e *projectionEnv) liveMemory() (*redis.Memory, error) {
	c, err := e.redisClient()
	if err != nil {
		return nil, err
	}
	// A room whose memory vanished from Redis is folded again from the log.
	return redis.NewMemory(c, redis.MemoryConfig{Prefix: e.redis.prefix, Log: e.store, Logger: e.log, Keys: e.keys})
}

// memoryRebuild is the memory's rebuild, into a dry run's scratch
// generation with dryRun.
func (e *projectionEnv) memoryRebuild(dryRun bool) (*redis.MemoryRebuild, error) {
	c, err := e.redisClient()
	if err != nil {
		return nil, err
	}
	return redis.NewMemoryRebuild(c, redis.MemoryRebuildConfig{Prefix: e.redis.prefix, DryRun: dryRun, Logger: e.log, Keys: e.keys})
}

// memoryStatus is the memory's rows of `projections status`.
func memoryStatus(ctx context.Context, e *projectionEnv) ([]projectionRow, error) {
	rb, err := e.memoryRebuild(false)
	if err != nil {
		return nil, err
	}
	copies, err := rb.Copies(ctx)
	if err != nil {
		return nil, fmt.Errorf("memory (Redis %s): %w", e.redis.prefix, err)
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
		row := projectionRow{found: c.Found, role: role}
		row.Name, row.Position, row.LastError, row.LogID = name, c.Checkpoint, c.LastError, c.Log
		rows = append(rows, row)
	}
	return rows, nil
}
