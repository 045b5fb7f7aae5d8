package userlimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Kind names one of the rate limits a Limiter keeps.
type Kind string

// The rate limits chatd keeps.
const (
	Messages     Kind = "messages"      // a user's chat messages
	Requests     Kind = "requests"      // a user's /api requests
	UserConnects Kind = "connects"      // a user's WebSocket connection attempts
	AddrConnects Kind = "addr_connects" // WebSocket connection attempts from one network address
)

// QuarterBurst is the burst Parley's limits allow by default: a quarter
// of a minute's tokens, and at least one.
func QuarterBurst(perMinute float64) int { return max(1, int(perMinute/4)) }

// Rate is a token bucket: Burst tokens at once, PerMinute a minute after
// that.
type Rate struct {
	PerMinute float64
	Burst     int
}

// RateStore keeps rate limits that several processes share;
// adapters/redis.Limits is one. Allow spends one of key's tokens, or
// reports how long until there is one.
type RateStore interface {
	Allow(ctx context.Context, key string, perMinute float64, burst int) (bool, time.Duration, error)
}

// LeaseStore counts connections that several processes share, as leases a
// process renews while their connections live; adapters/redis.Limits is
// one.
type LeaseStore interface {
	Acquire(ctx context.Context, user, lease string, max int) (bool, error)
	Release(ctx context.Context, user, lease string) error
	Refresh(ctx context.Context, leases map[string][]string) error
}

// Defaults of LimiterConfig's zero values.
const (
	DefaultHeartbeat = 10 * time.Second
	DefaultTimeout   = 250 * time.Millisecond
	DefaultRetry     = time.Second
)

// LimiterConfig configures a Limiter.
type LimiterConfig struct {
	// Rates are the rate limits by kind; a kind without one is unlimited.
	Rates map[Kind]Rate
	// MaxConnsPerUser caps a user's open connections; 0 means no cap.
	MaxConnsPerUser int
	// Instance names this process in its connection leases (chatd's
	// PARLEY_INSTANCE), for operators reading them; a random tag makes
	// each Limiter's leases its own in any case.
	Instance string
	// Heartbeat is how often Run renews this process's leases; keep it
	// well below the store's lease lifetime. Default 10s.
	Heartbeat time.Duration
	// Timeout bounds each call to a store; a call that takes longer counts
	// as a failure. Default 250ms.
	Timeout time.Duration
	// Retry is how long, after a store failed, the Limiter keeps to its
	// per-process limits before it asks the store again. Default 1s.
	Retry time.Duration
}

// LimiterDeps are a Limiter's stores, logger and clock; all may be nil.
type LimiterDeps struct {
	// Rates and Leases share limits across processes; nil keeps that
	// limit per process.
	Rates  RateStore
	Leases LeaseStore
	// Logger receives the store's failures and recoveries. Nil discards.
	Logger *slog.Logger
	// Now is the clock of the per-process buckets. Default time.Now.
	Now func() time.Time
}

// Limiter keeps per-user (and per-address) limits: rates and a cap on open
// connections. With stores they are shared by every process using them,
// so that N replicas allow one user what one process would. While a store
// fails, the Limiter falls back to per-process limits — each replica then
// allows the full limit, N× in all — and logs one warning when that starts
// and one line when the store answers again. It is safe for concurrent
// use; Run renews its connection leases.
type Limiter struct {
	cfg   LimiterConfig
	deps  LimiterDeps
	local map[Kind]*Limits // per-process buckets: without a store, or while it fails
	token string           // Instance and a random tag: unique to this Limiter
	seq   atomic.Uint64

	mu        sync.Mutex
	conns     map[string]map[string]struct{} // user -> leases held by this process
	down      bool                           // a store is failing
	nextProbe time.Time                      // when to ask it again
}

// NewLimiter returns a Limiter.
func NewLimiter(cfg LimiterConfig, deps LimiterDeps) *Limiter {
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Retry <= 0 {
		cfg.Retry = DefaultRetry
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	var tag [6]byte
	_, _ = rand.Read(tag[:]) // never fails (crypto/rand)
	l := &Limiter{cfg: cfg, deps: deps, local: map[Kind]*Limits{}, conns: map[string]map[string]struct{}{},
		token: cfg.Instance + "/" + hex.EncodeToString(tag[:])}
	for k, r := range cfg.Rates {
		l.local[k] = New(r.PerMinute, r.Burst, deps.Now)
	}
	return l
}

// Take spends one token of kind for key (a user id, or an address). When
// none is left it spends nothing and returns false and how long until
// there is one.
func (l *Limiter) Take(ctx context.Context, kind Kind, key string) (bool, time.Duration) {
	r, ok := l.cfg.Rates[kind]
	if !ok {
		return true, 0
	}
	if l.deps.Rates != nil && l.shared() {
		cctx, cancel := context.WithTimeout(ctx, l.cfg.Timeout)
		ok, wait, err := l.deps.Rates.Allow(cctx, string(kind)+":"+key, r.PerMinute, r.Burst)
		cancel()
		if err == nil {
			l.recovered()
			return ok, wait
		}
		l.failed(err)
	}
	return l.local[kind].Take(key)
}

// Hold takes one of user's connection slots until release is called, or
// returns false when user holds MaxConnsPerUser already (across processes,
// with a store).
func (l *Limiter) Hold(ctx context.Context, user string) (release func(), ok bool) {
	max := l.cfg.MaxConnsPerUser
	lease := l.token + "/" + strconv.FormatUint(l.seq.Add(1), 10)
	decided := false
	if max > 0 && l.deps.Leases != nil && l.shared() {
		cctx, cancel := context.WithTimeout(ctx, l.cfg.Timeout)
		ok, err := l.deps.Leases.Acquire(cctx, user, lease, max)
		cancel()
		if err == nil {
			l.recovered()
			if !ok {
				return nil, false
			}
			decided = true
		} else {
			l.failed(err)
		}
	}
	l.mu.Lock()
	held := l.conns[user]
	if !decided && max > 0 && len(held) >= max {
		l.mu.Unlock()
		return nil, false
	}
	if held == nil {
		held = map[string]struct{}{}
		l.conns[user] = held
	}
	held[lease] = struct{}{}
	l.mu.Unlock()
	return sync.OnceFunc(func() { l.release(user, lease) }), true
}

func (l *Limiter) release(user, lease string) {
	l.mu.Lock()
	delete(l.conns[user], lease)
	if len(l.conns[user]) == 0 {
		delete(l.conns, user)
	}
	l.mu.Unlock()
	if l.deps.Leases == nil || l.cfg.MaxConnsPerUser <= 0 || !l.shared() {
		return // the lease expires in the store by itself
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.Timeout)
	defer cancel()
	if err := l.deps.Leases.Release(ctx, user, lease); err != nil {
		l.failed(err)
	}
}

// Run renews this process's connection leases every Heartbeat until ctx
// ends, re-adding those the store lost (a Redis restarted empty) and
// those taken while it failed. It returns nil when ctx ends.
func (l *Limiter) Run(ctx context.Context) error {
	if l.deps.Leases == nil || l.cfg.MaxConnsPerUser <= 0 {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(l.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		l.mu.Lock()
		leases := make(map[string][]string, len(l.conns))
		for user, held := range l.conns {
			for lease := range held {
				leases[user] = append(leases[user], lease)
			}
		}
		l.mu.Unlock()
		cctx, cancel := context.WithTimeout(ctx, l.cfg.Timeout+l.cfg.Heartbeat/2)
		err := l.deps.Leases.Refresh(cctx, leases)
		cancel()
		switch {
		case err == nil:
			l.recovered()
		case ctx.Err() == nil:
			l.failed(err)
		}
	}
}

// shared reports whether to ask the stores: they have not failed in the
// last Retry.
func (l *Limiter) shared() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.down || !l.deps.Now().Before(l.nextProbe)
}

func (l *Limiter) failed(err error) {
	l.mu.Lock()
	was := l.down
	l.down, l.nextProbe = true, l.deps.Now().Add(l.cfg.Retry)
	l.mu.Unlock()
	if !was {
		l.deps.Logger.Warn("shared limits unavailable: each replica now enforces the per-user limits by itself (N replicas allow N times each limit) until the store answers again",
			"error", err, "retry_every", l.cfg.Retry)
	}
}

func (l *Limiter) recovered() {
	l.mu.Lock()
	was := l.down
	l.down = false
	l.mu.Unlock()
	if was {
		l.deps.Logger.Info("shared limits restored: the per-user limits hold across replicas again")
	}
}
