package redis

import (
	"context"
	"fmt"
	"time"

	"github.com/go-redis/redis_rate/v10"
	goredis "github.com/redis/go-redis/v9"
)

// DefaultLeaseTTL is how long a connection lease lives without a refresh:
// the connections of a replica that died stop counting after it.
const DefaultLeaseTTL = 30 * time.Second

// LimitsConfig configures Limits. The zero value is ready to use.
type LimitsConfig struct {
	// Prefix starts every key Limits writes (the rates' keys come after
	// redis_rate's own "rate:"). Default DefaultPrefix.
	Prefix string
	// LeaseTTL is how long a connection lease lives unless refreshed.
	// Default DefaultLeaseTTL.
	LeaseTTL time.Duration
}

// Limits keeps per-user limits in Redis, so that every process on the same
// Redis and prefix enforces them together: rates with the generic cell
// rate algorithm of github.com/go-redis/redis_rate (one key per limited
// key, on Redis's clock), and connection counts as leases. It is safe for
// concurrent use; adapters/userlimit falls back to per-process limits
// while it fails.
//
// A user's connections are a sorted set of leases scored by their expiry,
// on Redis's clock: acquiring one drops the expired ones, counts the rest
// and adds the lease in one script, so two processes racing for a user's
// last slot cannot both get it. A process refreshes its leases while their
// connections live and removes each when it closes; a process that dies
// leaves leases that expire within LeaseTTL.
type Limits struct {
	rdb    *goredis.Client
	rate   *redis_rate.Limiter
	prefix string
	ttl    time.Duration
}

// NewLimits returns Limits over rdb.
func NewLimits(rdb *goredis.Client, cfg LimitsConfig) *Limits {
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	return &Limits{rdb: rdb, rate: redis_rate.NewLimiter(rdb), prefix: cfg.Prefix, ttl: cfg.LeaseTTL}
}

// Allow spends one of key's tokens at perMinute tokens a minute in bursts
// of burst. When none is left it spends nothing and returns false and how
// long until one is.
func (l *Limits) Allow(ctx context.Context, key string, perMinute float64, burst int) (bool, time.Duration, error) {
	// One token every Period: any rate, also below one a minute.
	limit := redis_rate.Limit{Rate: 1, Burst: burst, Period: time.Duration(float64(time.Minute) / perMinute)}
	res, err := l.rate.Allow(ctx, l.prefix+"limit:"+key, limit)
	if err != nil {
		return false, 0, fmt.Errorf("redis: rate limit %s: %w", key, err)
	}
	if res.Allowed == 0 {
		return false, res.RetryAfter, nil
	}
	return true, 0, nil
}

// acquireLeaseScript adds lease ARGV[1] to the set KEYS[1] unless it holds
// ARGV[2] unexpired leases already; leases live ARGV[3] ms. It returns 1
// when the lease was added (or was there), else 0.
var acquireLeaseScript = goredis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local ttl = tonumber(ARGV[3])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
	redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
	redis.call('PEXPIRE', KEYS[1], ttl)
	return 1
end
return 0
`)

// renewLeasesScript sets every lease ARGV[2..] of the set KEYS[1] to expire
// ARGV[1] ms from now, adding those Redis lost (a restart without
// persistence, say): they are connections still open.
var renewLeasesScript = goredis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
for i = 2, #ARGV do
	redis.call('ZADD', KEYS[1], now + ttl, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], ttl)
return 0
`)

func (l *Limits) connKey(user string) string { return l.prefix + "conns:" + user }

// Acquire adds lease to user's connections unless user holds max unexpired
// ones already; it reports whether it did.
func (l *Limits) Acquire(ctx context.Context, user, lease string, max int) (bool, error) {
	n, err := acquireLeaseScript.Run(ctx, l.rdb, []string{l.connKey(user)}, lease, max, l.ttl.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("redis: acquire a connection of user %s: %w", user, err)
	}
	return n == 1, nil
}

// Release removes lease from user's connections.
func (l *Limits) Release(ctx context.Context, user, lease string) error {
	if err := l.rdb.ZRem(ctx, l.connKey(user), lease).Err(); err != nil {
		return fmt.Errorf("redis: release a connection of user %s: %w", user, err)
	}
	return nil
}

// Refresh renews the leases of the connections still open, by user, in
// one round trip.
func (l *Limits) Refresh(ctx context.Context, leases map[string][]string) error {
	if len(leases) == 0 {
		return nil
	}
	pipe := l.rdb.Pipeline()
	for user, ls := range leases {
		args := make([]any, 0, len(ls)+1)
		args = append(args, l.ttl.Milliseconds())
		for _, lease := range ls {
			args = append(args, lease)
		}
		renewLeasesScript.Eval(ctx, pipe, []string{l.connKey(user)}, args...) // Run cannot fall back to EVAL inside a pipeline
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("redis: refresh %d users' connection leases: %w", len(leases), err)
	}
	return nil
}
