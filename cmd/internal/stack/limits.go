package stack

import (
	"log/slog"

	goredis "github.com/redis/go-redis/v9"

	"github.com/parleychat/parley/adapters/redis"
	"github.com/parleychat/parley/adapters/userlimit"
	"github.com/parleychat/parley/adapters/wsapi"
)

// newLimiter keeps the per-user limits of the gateway and the REST API in
// Redis, under the memory's prefix, so that every replica on the same
// Redis enforces them together; while Redis is down each replica keeps
// them itself (and logs so).
func newLimiter(cfg Config, rdb *goredis.Client, log *slog.Logger) *userlimit.Limiter {
	store := redis.NewLimits(rdb, redis.LimitsConfig{Prefix: cfg.RedisPrefix, LeaseTTL: cfg.LimitLeaseTTL})
	return userlimit.NewLimiter(userlimit.LimiterConfig{
		Rates: map[userlimit.Kind]userlimit.Rate{
			userlimit.Messages:     {PerMinute: cfg.MessagesPerMinute, Burst: wsapi.DefaultMessageBurst},
			userlimit.Requests:     {PerMinute: cfg.APIPerMinute, Burst: userlimit.QuarterBurst(cfg.APIPerMinute)},
			userlimit.UserConnects: {PerMinute: cfg.ConnectsPerMinute, Burst: userlimit.QuarterBurst(cfg.ConnectsPerMinute)},
			userlimit.AddrConnects: {PerMinute: cfg.AddrConnects, Burst: userlimit.QuarterBurst(cfg.AddrConnects)},
		},
		MaxConnsPerUser: cfg.MaxConnsPerUser,
		Instance:        cfg.Instance,
		Heartbeat:       cfg.LimitLeaseTTL / 3,
	}, userlimit.LimiterDeps{Rates: store, Leases: store, Logger: log})
}
