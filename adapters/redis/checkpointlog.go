package redis

import (
	"context"
	"fmt"

	goredis "github.com/redis/go-redis/v9"

	"github.com/parleychat/parley/projections"
)

var _ projections.LogBinder = (*Memory)(nil)

// fieldLog is the checkpoint hash's field naming the log its position
// belongs to (projections.LogBinder).
const fieldLog = "log"

// bindLogScript sets the log field of the checkpoint hash of the live
// generation (or of ARGV[3], when it is not empty) unless it is set, and
// returns it. KEYS: the pointer. ARGV: the prefix, the checkpoint's
// suffix, the pinned generation, the log.
var bindLogScript = goredis.NewScript(`
local base = ARGV[1]
local g = ARGV[3]
if g == '' then g = redis.call('GET', KEYS[1]) or '' end
if g ~= '' then base = base .. g .. ':' end
redis.call('HSETNX', base .. ARGV[2], 'log', ARGV[4])
return redis.call('HGET', base .. ARGV[2], 'log')
`)

// BindLog implements projections.LogBinder: the log is a field of the
// checkpoint's hash, in the generation the Memory writes (the live one,
// unless it is pinned), set in one script.
func (m *Memory) BindLog(ctx context.Context, log string) (string, error) {
	pinned := ""
	if m.pinned {
		pinned = m.gen
	}
	bound, err := bindLogScript.Run(ctx, m.client, []string{m.prefix + pointerSuffix}, m.prefix, m.checkpointSuffix(), pinned, log).Text()
	if err != nil {
		return "", fmt.Errorf("redis memory %s: record the log of the checkpoint: %w", m.name, err)
	}
	return bound, nil
}
