package redis

import (
	"context"
	"fmt"

	goredis "github.com/redis/go-redis/v9"
)

// Generations of the memory read model.
//
// Redis cannot rename every key under a prefix at once, so a rebuild does
// not fill another prefix: it fills another generation under the same
// prefix P, and a swap moves one pointer.
//
//	P live                 string: the live generation, such as "g3"
//	P live:hold            string with a time to live: a rebuild holds the
//	                       live projection still (see MemoryRebuild)
//	P g3:memory:...        the keys of generation g3 (see Memory)
//	P memory:...           the keys of generation "": the layout of
//	                       deployments older than rebuilds
//
// When P live does not exist (or is empty) the live generation is "", so
// an existing deployment keeps its keys where they are and nothing is
// migrated; its first rebuild writes g1 and swaps it in, and keeps the
// old keys (P memory:...) until DropOld.
//
// A Memory that follows the live generation (MemoryConfig.Generation
// empty) resolves it on each call: Load, Checkpoint and LastError read
// the pointer and the hash in one script, so they see a swap at once; each
// Apply batch checks the pointer (and the hold) inside its write script
// and, when a swap happened since it read the keys, reads them again from
// the new generation. A running chatd therefore moves to the new
// generation at the swap, without a restart.
//
// With Redis Cluster, give the prefix a hash tag ("{parley}:"): the
// scripts compute key names from the pointer, which works only while all
// of them share a slot.

// Key suffixes under the prefix.
const (
	pointerSuffix = "live"
	holdSuffix    = "live:hold"
)

// validGeneration reports whether gen is a generation's name: g and 1 to
// 18 digits.
func validGeneration(gen string) bool {
	if len(gen) < 2 || len(gen) > 19 || gen[0] != 'g' {
		return false
	}
	for _, r := range gen[1:] {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// generationBase is the start of generation gen's keys under prefix.
func generationBase(prefix, gen string) string {
	if gen == "" {
		return prefix
	}
	return prefix + gen + ":"
}

func (m *Memory) base(gen string) string { return generationBase(m.prefix, gen) }

// generation is the pinned generation, or the live one last seen.
func (m *Memory) generation() string {
	if m.pinned {
		return m.gen
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cur
}

func (m *Memory) setGeneration(gen string) {
	m.mu.Lock()
	m.cur = gen
	m.mu.Unlock()
}

// followFlag is the scripts' argument saying whether to check the live
// pointer and the hold.
func (m *Memory) followFlag() string {
	if m.pinned {
		return "0"
	}
	return "1"
}

// Generation returns the Memory's generation: the pinned one, or the one
// live now ("" for the layout older than rebuilds).
func (m *Memory) Generation(ctx context.Context) (string, error) {
	if m.pinned {
		return m.gen, nil
	}
	gen, err := liveGeneration(ctx, m.client, m.prefix)
	if err != nil {
		return "", fmt.Errorf("redis memory %s: %w", m.name, err)
	}
	m.setGeneration(gen)
	return gen, nil
}

// liveGeneration reads the pointer.
func liveGeneration(ctx context.Context, client goredis.UniversalClient, prefix string) (string, error) {
	gen, err := client.Get(ctx, prefix+pointerSuffix).Result()
	if err != nil && err != goredis.Nil {
		return "", fmt.Errorf("read the live generation %s: %w", prefix+pointerSuffix, err)
	}
	return gen, nil
}

// resolveBase is the base of the Memory's generation now.
func (m *Memory) resolveBase(ctx context.Context) (string, error) {
	gen, err := m.Generation(ctx)
	if err != nil {
		return "", err
	}
	return m.base(gen), nil
}

// readLiveHashScript reads a hash of the live generation. KEYS: the
// pointer. ARGV: the prefix, the key's suffix under its generation's base.
var readLiveHashScript = goredis.NewScript(`
local base = ARGV[1]
local g = redis.call('GET', KEYS[1])
if g and g ~= '' then base = base .. g .. ':' end
return redis.call('HGETALL', base .. ARGV[2])
`)

// readHash reads the hash suffix of the Memory's generation, in one round
// trip.
func (m *Memory) readHash(ctx context.Context, suffix string) (map[string]string, error) {
	if m.pinned {
		return m.client.HGetAll(ctx, m.base(m.gen)+suffix).Result()
	}
	flat, err := readLiveHashScript.Run(ctx, m.client, []string{m.prefix + pointerSuffix}, m.prefix, suffix).StringSlice()
	if err != nil {
		return nil, err
	}
	h := make(map[string]string, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		h[flat[i]] = flat[i+1]
	}
	return h, nil
}
