package wsapi

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"time"

	"github.com/parleychat/parley/adapters/userlimit"
)

// Limiter keeps the gateway's per-user and per-address limits;
// userlimit.Limiter implements it, in one process or shared by every
// replica through Redis.
type Limiter interface {
	// Take spends one token of kind for key (a user id, or a network
	// address); when none is left it returns false and how long until
	// there is one.
	Take(ctx context.Context, kind userlimit.Kind, key string) (bool, time.Duration)
	// Hold takes one of user's connection slots until release is called;
	// false when the user holds them all.
	Hold(ctx context.Context, user string) (release func(), ok bool)
}

// localLimits keeps cfg's limits in this process.
func localLimits(cfg Config, now func() time.Time) *userlimit.Limiter {
	return userlimit.NewLimiter(userlimit.LimiterConfig{
		Rates: map[userlimit.Kind]userlimit.Rate{
			userlimit.Messages:     {PerMinute: cfg.MessagesPerMinute, Burst: cfg.MessageBurst},
			userlimit.UserConnects: {PerMinute: cfg.ConnectsPerMinute, Burst: cfg.ConnectBurst},
			userlimit.AddrConnects: {PerMinute: cfg.AddrConnectsPerMinute, Burst: cfg.AddrConnectBurst},
		},
		MaxConnsPerUser: cfg.MaxConnsPerUser,
	}, userlimit.LimiterDeps{Now: now})
}

// addrRefusal spends a connection attempt of the request's network
// address (the TCP peer: behind a proxy, the proxy's), or says why it is
// refused.
func (g *Gateway) addrRefusal(ctx context.Context, r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if ok, wait := g.limits.Take(ctx, userlimit.AddrConnects, host); !ok {
		return "too many connection attempts from this address; retry in " + seconds(wait)
	}
	return ""
}

// userRefusal spends one of user's connection attempts, or says why it is
// refused.
func (g *Gateway) userRefusal(user string) string {
	ctx, cancel := context.WithTimeout(g.ctx, g.cfg.CallTimeout)
	defer cancel()
	if ok, wait := g.limits.Take(ctx, userlimit.UserConnects, user); !ok {
		return "too many connection attempts; retry in " + seconds(wait)
	}
	return ""
}

// seconds renders a wait as whole seconds, rounded up.
func seconds(d time.Duration) string {
	return fmt.Sprintf("%d s", int(math.Ceil(d.Seconds())))
}

// admit holds one of user's connection slots for c and registers c for
// Shutdown; release undoes both.
func (g *Gateway) admit(c *conn, user string) (release func(), ok bool) {
	g.mu.Lock()
	closing := g.closing
	g.mu.Unlock()
	if closing {
		return nil, false
	}
	ctx, cancel := context.WithTimeout(g.ctx, g.cfg.CallTimeout)
	held, ok := g.limits.Hold(ctx, user)
	cancel()
	if !ok {
		return nil, false
	}
	g.mu.Lock()
	if g.closing {
		g.mu.Unlock()
		held()
		return nil, false
	}
	g.conns[c] = struct{}{}
	g.mu.Unlock()
	return func() {
		g.mu.Lock()
		delete(g.conns, c)
		g.mu.Unlock()
		held()
	}, true
}
