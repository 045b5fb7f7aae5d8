package kurrentdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/parleychat/parley/domain"
)

// pingTimeout bounds the check a rebuilt client must pass before the
// store uses it.
const pingTimeout = 5 * time.Second

// The v4 client's failure modes, read in its esdb/impl.go, and what the
// store does about them:
//
//   - Every call first asks the client's connection goroutine for a
//     connection over an unbuffered channel, ignoring the call's context.
//     While that goroutine runs node discovery (maxDiscoverAttempts ×
//     discoveryInterval, each try bounded by gossipTimeout) every caller
//     waits. When discovery fails the goroutine returns for good: callers
//     already waiting block forever, every later call fails with
//     ErrorCodeConnectionClosed, and Close then makes the blocked sends
//     panic ("send on closed channel"). The store therefore makes every
//     client call in a goroutine it owns (call), which its caller waits
//     for only until its context ends. A client is closed once no worker
//     is inside it (so that no send races the close), its calls in flight
//     ended first by cancelling their contexts. Only a worker stuck on a
//     dead client cannot end; after stuckGrace (or closeGrace, when the
//     store closes) the client is closed anyway, and the worker recovers
//     that one panic. Sending on a channel while it is closed is a data
//     race the race detector reports: it happens only then.
//   - On an Unavailable reply the client drops its connection without
//     closing it and discovers a new one on the next call, so every
//     "Server Is Too Busy" or "Not Ready" would leave one more connection
//     open, and a discovery that fails kills the client under the calls
//     waiting for it. The store retires the client instead: no call
//     starts on it any more, it is closed once its last call or
//     subscription ends, and the store rebuilds a client, with backoff,
//     reporting unavailable meanwhile. No call of the store may ask a
//     retiring client for a connection after it dropped its own: the
//     client logs the reply just before it drops the connection, and
//     there (clientLogger, client.fail) the store refuses new calls and
//     waits until every call that was asking for a connection has it.
//     A call has its connection when the client first asks the call's
//     context for its deadline (configureGrpcCall, right after
//     getConnectionHandle; see gateCtx).

// How long calls may stay inside a dead client, or a closing store's,
// before it is closed under them.
const (
	stuckGrace = 10 * time.Second
	closeGrace = 5 * time.Second
)

// client is one esdb client and the store's calls using it. The fields
// from callers on are guarded by the Store's mu.
type client struct {
	esdb    *esdb.Client
	failing atomic.Bool // the client reported an Unavailable reply

	gate    sync.Mutex
	asking  int        // calls asking the client for a connection (gate)
	settled *sync.Cond // signalled when asking drops to zero

	callers int  // workers inside its methods: they may send on its channel
	subs    int  // open subscriptions: they never do
	retired bool // no call starts on it; it closes once unused
	dead    bool // its connection goroutine has returned: close it once no worker is inside
	closed  bool
	gone    chan struct{} // closed when the client is
}

// closedUnder reports a call whose client was closed while it waited.
type closedUnder struct{}

func (closedUnder) Error() string { return "the client was closed under the call" }

// errRetiring is what a call gets that would start on a client that
// reported an Unavailable reply and is being retired.
var errRetiring = fmt.Errorf("the client dropped its connection: %w",
	domain.Errorf(domain.EUNAVAILABLE, "the event store is unavailable; try again later"))

// newClient creates a client over the store's configuration, with a
// logger that tells the store about Unavailable replies.
func (s *Store) newClient() (*client, error) {
	c := &client{gone: make(chan struct{})}
	c.settled = sync.NewCond(&c.gate)
	cfg := *s.cfg
	cfg.Logger = clientLogger(s.logger, c)
	ec, err := esdb.NewClient(&cfg)
	if err != nil {
		return nil, fmt.Errorf("kurrentdb: create client: %w", err)
	}
	c.esdb = ec
	s.mu.Lock()
	s.clients[c] = struct{}{}
	s.mu.Unlock()
	return c, nil
}

// acquire returns the current client with one more user, and counts the
// worker that will use it, or says why there is none.
func (s *Store) acquire() (*client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return nil, errStoreClosed
	case s.cur == nil:
		return nil, s.downError()
	case s.cur.failing.Load():
		return nil, errRetiring
	}
	s.cur.callers++
	s.wg.Add(1)
	return s.cur, nil
}

var errStoreClosed = domain.Permanent(domain.Errorf(domain.EUNAVAILABLE, "the event store is closed"))

// downError says why the store has no client; s.mu is held.
func (s *Store) downError() error {
	return fmt.Errorf("reconnecting since %s (%d attempts): %w: %w",
		s.downAt.Format(time.RFC3339), s.attempts, domain.Errorf(domain.EUNAVAILABLE, "the event store is unavailable; try again later"), s.downCause)
}

// hold counts a subscription opened on c.
func (s *Store) hold(c *client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.subs++
}

// releaseSub uncounts a subscription of c, closing c if it is unused.
func (s *Store) releaseSub(c *client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.subs--
	s.maybeCloseLocked(c)
}

// release uncounts a worker of c, closing c if it is unused.
func (s *Store) release(c *client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.callers--
	s.maybeCloseLocked(c)
}

// maybeCloseLocked closes c when no worker is inside it and it is dead,
// or the store is closed, or it is retired and no subscription uses it.
// s.mu is held.
func (s *Store) maybeCloseLocked(c *client) {
	if c.closed || c.callers > 0 {
		return
	}
	if c.dead || s.closed || c.retired && c.subs == 0 {
		s.closeLocked(c)
	}
}

// closeLocked closes c, even with workers inside (see the top of this
// file); s.mu is held.
func (s *Store) closeLocked(c *client) {
	if !c.closed {
		c.closed = true
		close(c.gone)
		delete(s.clients, c)
		_ = c.esdb.Close() // closes the connection goroutine's channel; never fails
	}
}

// bound returns ctx, also ended when the store closes, and its release.
func (s *Store) bound(ctx context.Context) (context.Context, func()) {
	bctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	return bctx, func() { stop(); cancel() }
}

// run calls fn with c in a worker goroutine the store owns and returns
// fn's error, or ctx's error once ctx ends first. The caller has acquired
// c. The worker outlives an abandoned caller until fn returns (closing a
// dead client is what makes it return); if the caller gave up before fn
// finished, the worker calls abandoned, if set, to release what fn
// obtained. abandonedEarly reports that case to the caller.
func (s *Store) run(ctx context.Context, c *client, fn func(ctx context.Context, ec *esdb.Client) error, abandoned func()) (err error, abandonedEarly bool) {
	const (
		pending = iota
		finished
		gaveUp
	)
	var state atomic.Int32
	done := make(chan struct{})
	var result error
	go func() { // owned: counted in s.wg by acquire
		defer s.wg.Done()
		defer s.release(c)
		r := s.guard(ctx, c, fn)
		s.observe(c, r)
		result = r
		if !state.CompareAndSwap(pending, finished) && abandoned != nil {
			abandoned()
		}
		close(done)
	}()
	select {
	case <-done:
		return result, false
	case <-ctx.Done():
		if state.CompareAndSwap(pending, gaveUp) {
			return ctx.Err(), true
		}
		<-done
		return result, false
	}
}

// guard calls fn, turning the panic of a send on the closed channel of a
// client closed under it into an error. Other panics propagate.
func (s *Store) guard(ctx context.Context, c *client, fn func(ctx context.Context, ec *esdb.Client) error) (err error) {
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		if re, ok := r.(runtime.Error); ok && strings.Contains(re.Error(), "send on closed channel") {
			err = closedUnder{}
			return
		}
		panic(r)
	}()
	gctx, ok := c.enter(ctx)
	if !ok {
		return errRetiring
	}
	defer gctx.has()
	return fn(gctx, c.esdb)
}

// enter counts a call that will ask c for a connection, unless c is
// failing; the call's context reports when it has one.
func (c *client) enter(ctx context.Context) (*gateCtx, bool) {
	c.gate.Lock()
	defer c.gate.Unlock()
	if c.failing.Load() {
		return nil, false
	}
	c.asking++
	return &gateCtx{Context: ctx, c: c}, true
}

// fail marks c failing, so that no call enters it, and waits until the
// calls asking it for a connection have one. The client calls it (through
// its logger) just before it drops its connection.
func (c *client) fail() {
	c.gate.Lock()
	defer c.gate.Unlock()
	c.failing.Store(true)
	for c.asking > 0 {
		c.settled.Wait()
	}
}

// gateCtx is a call's context that tells its client when the call has
// its connection: the client's methods first read its deadline right
// after getConnectionHandle (configureGrpcCall derives the call's own
// deadline from it), and a call that returns has one or never will.
type gateCtx struct {
	context.Context
	c    *client
	once sync.Once
}

func (g *gateCtx) Deadline() (time.Time, bool) {
	g.has()
	return g.Context.Deadline()
}

// has reports, once, that the call has its connection.
func (g *gateCtx) has() {
	g.once.Do(func() {
		g.c.gate.Lock()
		defer g.c.gate.Unlock()
		if g.c.asking--; g.c.asking == 0 {
			g.c.settled.Broadcast()
		}
	})
}

// call runs fn on the current client (see run), its context also ended
// when the store closes.
func (s *Store) call(ctx context.Context, fn func(ctx context.Context, ec *esdb.Client) error) error {
	c, err := s.acquire()
	if err != nil {
		return err
	}
	bctx, done := s.bound(ctx)
	defer done()
	err, _ = s.run(bctx, c, fn, nil)
	if err != nil && ctx.Err() == nil && s.ctx.Err() != nil {
		return errStoreClosed
	}
	return err
}

// observe retires c after a failure that leaves it unusable or makes it
// drop its connection.
func (s *Store) observe(c *client, err error) {
	switch {
	case err == nil:
	case errors.As(err, new(closedUnder)), clientCode(err) == esdb.ErrorCodeConnectionClosed, isDiscoveryFailure(err):
		s.retire(c, err, true)
	case clientCode(err) == esdb.ErrorUnavailable, c.failing.Load():
		s.retire(c, err, false)
	}
}

// isDiscoveryFailure reports the error of failed node discovery, after
// which the client's connection goroutine has returned for good.
func isDiscoveryFailure(err error) bool {
	return strings.Contains(err.Error(), "maximum discovery attempt count reached")
}

// retire stops new calls on c and, if c is the current client, starts
// rebuilding one. A dead c (its connection goroutine gone) is closed at
// once, which releases the calls stuck on it; another is closed once
// unused.
func (s *Store) retire(c *client, cause error, dead bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.retired = true
	if dead && !c.dead && !c.closed {
		c.dead = true
		if c.callers > 0 && !s.closed {
			s.wg.Add(1)
			go s.reap(c) // owned: counted in s.wg
		}
	}
	s.maybeCloseLocked(c)
	if s.cur != c || s.closed {
		return
	}
	if s.cfg == nil {
		return // nothing to rebuild from
	}
	s.cur, s.downCause, s.downAt, s.attempts = nil, cause, time.Now(), 0
	s.logger.Warn("kurrentdb: lost the server; reconnecting", "error", cause)
	s.wg.Add(1)
	go s.reconnect() // owned: counted in s.wg, stopped by Close
}

// reap closes dead c if workers are still inside it after stuckGrace:
// they are stuck on its channel, and only a close releases them.
func (s *Store) reap(c *client) {
	defer s.wg.Done()
	t := time.NewTimer(stuckGrace)
	defer t.Stop()
	select {
	case <-s.ctx.Done():
		return // Close takes over
	case <-c.gone:
		return // its workers left, and it closed
	case <-t.C:
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !c.closed && c.callers > 0 {
		s.logger.Warn("kurrentdb: closing a dead client under calls stuck in it", "calls", c.callers)
		s.closeLocked(c)
	}
}

// reconnect builds clients until one answers a ping, waiting minDelay
// before the first attempt and doubling the wait up to maxDelay, then
// makes it the current client.
func (s *Store) reconnect() {
	defer s.wg.Done()
	delay := s.minDelay
	for {
		t := time.NewTimer(delay)
		select {
		case <-s.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		c, err := s.connect()
		s.mu.Lock()
		s.attempts++
		if err == nil && !s.closed {
			s.cur = c
			s.logger.Info("kurrentdb: reconnected", "down_for", time.Since(s.downAt).Round(time.Millisecond), "attempts", s.attempts)
			s.mu.Unlock()
			return
		}
		if s.closed {
			if c != nil {
				c.retired = true
				s.closeLocked(c)
			}
			s.mu.Unlock()
			return
		}
		s.downCause = err
		s.mu.Unlock()
		s.logger.Warn("kurrentdb: reconnect failed", "error", err, "retry_in", delay)
		delay = min(2*delay, s.maxDelay)
	}
}

// connect builds a client and pings the server through it. It returns the
// client when the ping succeeds; otherwise the client is retired.
func (s *Store) connect() (*client, error) {
	c, err := s.newClient()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.closed {
		c.retired = true
		s.closeLocked(c)
		s.mu.Unlock()
		return nil, errStoreClosed
	}
	c.callers++
	s.wg.Add(1)
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(s.ctx, pingTimeout)
	defer cancel()
	err, _ = s.run(ctx, c, pingOn, nil)
	if err != nil {
		s.retire(c, err, false)
		return nil, mapError(ctx, err, "connect")
	}
	return c, nil
}

// clientLogger routes the client's log lines to l, and tells c when the
// client reports an Unavailable reply, which it logs as an "unexpected
// exception" just before it drops its connection (esdb/impl.go,
// handleError). The client logs every failed or cancelled call,
// subscription closes included, as an error, so its errors and warnings
// go out at info level and the rest at debug; the store logs what matters
// itself.
func clientLogger(l *slog.Logger, c *client) esdb.LoggingFunc {
	return func(level esdb.LogLevel, format string, args ...any) {
		if c != nil && level == esdb.LogError && strings.HasPrefix(format, "unexpected exception") && len(args) == 1 {
			if err, ok := args[0].(error); ok && status.Code(err) == codes.Unavailable {
				c.fail()
			}
		}
		lvl := slog.LevelDebug
		if level == esdb.LogError || level == esdb.LogWarn {
			lvl = slog.LevelInfo
		}
		ctx := context.Background()
		if !l.Enabled(ctx, lvl) {
			return
		}
		l.Log(ctx, lvl, "kurrentdb client: "+fmt.Sprintf(format, args...), "client_level", level)
	}
}
