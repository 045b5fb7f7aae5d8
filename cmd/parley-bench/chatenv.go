package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/adapters/inmem"
	"github.com/parleychat/parley/adapters/jwtauth"
	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/adapters/wsapi"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/audit"
	"github.com/parleychat/parley/domain/chat"
	"github.com/parleychat/parley/domain/room"
	"github.com/parleychat/parley/projections"
)

// chatEnv is what the chat benchmark's parts share: the scratch database
// with its event store and ChatLog projection, an in-memory store, the
// token secret, and the goroutines and servers everything runs in.
type chatEnv struct {
	progress  io.Writer
	drop      func() // closes pool and drops the scratch database
	pool      *pgxpool.Pool
	asyncPool *pgxpool.Pool // answer chunks' connections, synchronous_commit=off
	pg        *postgres.Store
	mem       *inmem.Store
	chatlog   *postgres.ChatLog
	runner    *projections.Runner
	auth      *jwtauth.Verifier
	secret    []byte
	epoch     time.Time // chunk stamps count nanoseconds from here

	bg      context.Context // background goroutines run under it
	cancel  context.CancelFunc
	tasks   tasks
	closers []func() // run in reverse order before cancel
}

func newChatEnv(ctx context.Context, cfg config) (_ *chatEnv, err error) {
	e := &chatEnv{progress: cfg.chat.progress, mem: inmem.New(nil), epoch: time.Now()}
	if e.progress == nil {
		e.progress = io.Discard
	}
	e.bg, e.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	if e.pool, e.drop, err = scratchPool(ctx, cfg.adminURL, 32); err != nil {
		return nil, err
	}
	scfg := postgres.StoreConfig{}
	if cfg.chat.commit == "async" { // as chatd does by default
		acfg := e.pool.Config().Copy()
		acfg.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
		if e.asyncPool, err = pgxpool.NewWithConfig(ctx, acfg); err != nil {
			return nil, err
		}
		scfg.AsyncPool, scfg.AsyncTypes = e.asyncPool, []string{room.TypeAnswerChunk}
	}
	e.pg = postgres.NewStore(e.pool, scfg)
	if e.chatlog, err = postgres.NewChatLog(e.pool, postgres.ChatLogConfig{}); err != nil {
		return nil, err
	}
	e.secret = make([]byte, 32)
	if _, err := rand.Read(e.secret); err != nil {
		return nil, err
	}
	if e.auth, err = jwtauth.New(ctx, jwtauth.Config{Secret: e.secret}); err != nil {
		return nil, err
	}
	// As chatd with its default PARLEY_CHATLOG_INTERVAL.
	e.runner = &projections.Runner{Store: e.pg, Projection: e.chatlog, Interval: 100 * time.Millisecond}
	e.tasks.Go(func() error { return e.runner.Run(e.bg) })
	return e, nil
}

// close shuts down what the benchmark started, in reverse order, then the
// background goroutines, and drops the scratch database.
func (e *chatEnv) close() {
	for i := len(e.closers) - 1; i >= 0; i-- {
		e.closers[i]()
	}
	e.cancel()
	if err := e.tasks.Wait(); err != nil {
		e.logf("a background task failed: %v", err)
	}
	if e.pg != nil {
		e.pg.Close()
	}
	if e.asyncPool != nil {
		e.asyncPool.Close()
	}
	if e.drop != nil {
		e.drop() // closes e.pool and drops the database
	}
}

func (e *chatEnv) logf(format string, args ...any) {
	fmt.Fprintf(e.progress, "parley-bench: chat: "+format+"\n", args...)
}

// token mints an access token for user.
func (e *chatEnv) token(user string) (string, error) {
	return jwtauth.Mint(e.secret, user, 2*time.Hour, time.Now(), nil)
}

// caughtUp waits until the ChatLog and the hub of s (a stack over the
// Postgres store) have seen everything appended so far, so that connects
// meet a steady server, not a hub still relaying a backlog. The log's head
// cannot tell: it is read below the oldest transaction still writing events,
// so it may lag behind committed appends. Instead it creates a marker room
// after them, whose first event is ordered after all of them, and waits
// for that.
func (e *chatEnv) caughtUp(ctx context.Context, s *chatStack) error {
	info, err := s.svc.CreateRoom(ctx, "bench-marker", "Marker")
	if err != nil {
		return err
	}
	evs, err := e.pg.ReadStream(ctx, room.Stream(info.ID), domain.ReadStreamOptions{Limit: 1})
	if err != nil {
		return err
	}
	pos := evs[0].Position
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := e.runner.WaitFor(ctx, pos); err != nil {
		return fmt.Errorf("wait for the chat log projection: %w", err)
	}
	if err := s.hub.WaitFor(ctx, pos); err != nil {
		return fmt.Errorf("wait for the %s hub: %w", s.name, err)
	}
	return nil
}

// gatewayConfig is the gateway's configuration in the benchmark: the
// defaults, except message rates no bench client reaches (each asks again
// as soon as its answer ends), connection-attempt rates no bench reaches
// (thousands of sockets from one address, a user reconnecting to time
// its history) and room for a user's sockets that the server has not
// finished closing when the next connect arrives.
var gatewayConfig = wsapi.Config{
	MessagesPerMinute: 6000, MessageBurst: 100, MaxConnsPerUser: 64,
	ConnectsPerMinute: 1e6, ConnectBurst: 1e5, AddrConnectsPerMinute: 1e6, AddrConnectBurst: 1e5,
}

// chatStack is one chat server: a Service over a store, a Hub, and a
// Gateway served over a real HTTP server on 127.0.0.1.
type chatStack struct {
	name    string
	svc     *chat.Service
	deps    wsapi.Deps
	base    string // ws://127.0.0.1:port/ws/chat/
	appends *appendLog
	hub     *wsapi.Hub
	probe   *subscriptionProbe
	// persisted is true for the stack over the Postgres store.
	persisted bool
}

// appendLog records the Service's appends while it is on (chat.Metrics).
type appendLog struct {
	mu     sync.Mutex
	on     bool
	durs   []time.Duration
	events int
}

func (a *appendLog) ObserveAppend(d time.Duration, events int, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.on && err == nil {
		a.durs = append(a.durs, d)
		a.events += events
	}
}

func (a *appendLog) ObserveAnswer(string, time.Duration) {}

func (a *appendLog) record(on bool) {
	a.mu.Lock()
	a.on = on
	a.mu.Unlock()
}

// subscriptionProbe is the store as the hub's log subscription sees it:
// while on, it records how long after its append began (RecordedAt) each
// event reached the hub through the subscription.
type subscriptionProbe struct {
	domain.EventStore
	mu   sync.Mutex
	on   bool
	lags []time.Duration
}

func (p *subscriptionProbe) SubscribeAll(ctx context.Context, opts domain.SubscribeAllOptions, h domain.Handler) error {
	return p.EventStore.SubscribeAll(ctx, opts, func(ctx context.Context, batch []domain.RecordedEvent) error {
		now := time.Now()
		p.mu.Lock()
		if p.on {
			for _, ev := range batch {
				p.lags = append(p.lags, now.Sub(ev.RecordedAt))
			}
		}
		p.mu.Unlock()
		return h(ctx, batch)
	})
}

func (p *subscriptionProbe) record(on bool) {
	p.mu.Lock()
	p.on = on
	p.mu.Unlock()
}

// newStack starts a Service over store answering with gen, a Hub and a
// Gateway, serving the chat endpoint on a fresh port.
func (e *chatEnv) newStack(ctx context.Context, name string, store domain.EventStore, history wsapi.HistoryLoader, gen chat.Generator) (*chatStack, error) {
	appends := &appendLog{}
	svcStore := store
	if store == domain.EventStore(e.pg) { // persisted appends go through the hash chain, as chatd's
		svcStore = audit.NewChainingStore(store, audit.ChainOptions{TrustTypes: []string{room.TypeAnswerChunk}})
	}
	probe := &subscriptionProbe{EventStore: store}
	hub := wsapi.NewHub(probe, nil)
	// As chatd: the service appends through the hub's tap.
	svc := chat.NewService(chat.Config{Instance: "bench-" + name, ShutdownGrace: time.Second},
		chat.Deps{Store: hub.Tap(svcStore), Generator: gen, Now: time.Now, Random: rand.Reader, Metrics: appends})
	e.tasks.Go(func() error { return svc.Run(e.bg) })
	e.tasks.Go(func() error { return hub.Run(e.bg) })
	select {
	case <-hub.Ready():
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(30 * time.Second):
		return nil, fmt.Errorf("%s hub: not ready after 30s", name)
	}
	s := &chatStack{name: name, svc: svc, appends: appends, hub: hub, probe: probe, persisted: store == domain.EventStore(e.pg), deps: wsapi.Deps{Hub: hub, Auth: e.auth, Rooms: svc, History: history, Stream: store}}
	var err error
	s.base, _, err = e.serveGateway(s.deps)
	return s, err
}

// serveGateway serves a new Gateway over deps on a fresh port and returns
// the chat endpoint's base URL and a function that shuts the gateway down
// (also run when the benchmark ends).
func (e *chatEnv) serveGateway(deps wsapi.Deps) (string, func(), error) {
	gw := wsapi.New(gatewayConfig, deps)
	mux := http.NewServeMux()
	mux.Handle("GET /ws/chat/{room_id}/", gw.Chat())
	addr, closeServer, err := e.serve(mux)
	if err != nil {
		return "", nil, err
	}
	shutdown := sync.OnceFunc(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := gw.Shutdown(ctx); err != nil {
			e.logf("gateway shutdown: %v", err)
		}
		closeServer()
	})
	e.closers = append(e.closers, shutdown)
	return "ws://" + addr + "/ws/chat/", shutdown, nil
}

// serve runs an HTTP server for h on 127.0.0.1:0 and returns its address
// and a function that closes it.
func (e *chatEnv) serve(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	e.tasks.Go(func() error { return srv.Serve(ln) })
	closeServer := sync.OnceFunc(func() { _ = srv.Close() })
	e.closers = append(e.closers, closeServer)
	return ln.Addr().String(), closeServer, nil
}

// bareServer is the baseline server: a gorilla upgrader configured as the
// gateway's, which sends one fixed frame and then holds the socket with a
// single blocked reader (the handler's goroutine).
type bareServer struct {
	first    []byte
	upgrader websocket.Upgrader
	url      string

	mu      sync.Mutex
	closing bool
	conns   map[*websocket.Conn]struct{}
	wg      sync.WaitGroup
	stop    func()
}

func (e *chatEnv) newBareServer(first []byte) (*bareServer, error) {
	b := &bareServer{first: first, conns: map[*websocket.Conn]struct{}{}, upgrader: websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   0, // as the gateway: reuse the HTTP server's 4 KiB reader
		WriteBufferSize:  4096,
		WriteBufferPool:  &sync.Pool{},
		Subprotocols:     []string{wsapi.Subprotocol},
	}}
	addr, closeServer, err := e.serve(b)
	if err != nil {
		return nil, err
	}
	b.url = "ws://" + addr + "/"
	b.stop = sync.OnceFunc(func() {
		closeServer()
		b.mu.Lock()
		b.closing = true
		for c := range b.conns {
			_ = c.Close()
		}
		b.mu.Unlock()
		b.wg.Wait()
	})
	e.closers = append(e.closers, b.stop)
	return b, nil
}

func (b *bareServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ws, err := b.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	b.mu.Lock()
	if b.closing {
		b.mu.Unlock()
		_ = ws.Close()
		return
	}
	b.conns[ws] = struct{}{}
	b.wg.Add(1)
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.conns, ws)
		b.mu.Unlock()
		_ = ws.Close()
		b.wg.Done()
	}()
	_ = ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := ws.WriteMessage(websocket.TextMessage, b.first); err != nil {
		return
	}
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			return
		}
	}
}

// tasks owns goroutines and keeps the first error of one that failed
// other than by being cancelled or closed.
type tasks struct {
	wg  sync.WaitGroup
	mu  sync.Mutex
	err error
}

func (t *tasks) Go(f func() error) {
	t.wg.Go(func() {
		err := f()
		if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, http.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
			return
		}
		t.mu.Lock()
		if t.err == nil {
			t.err = err
		}
		t.mu.Unlock()
	})
}

func (t *tasks) Wait() error {
	t.wg.Wait()
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// raiseFileLimit makes sure the process may hold need descriptors.
func raiseFileLimit(need uint64) error {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return fmt.Errorf("read RLIMIT_NOFILE: %w", err)
	}
	if l.Cur >= need {
		return nil
	}
	if l.Max < need {
		return fmt.Errorf("the open-file limit is %d (hard %d) but %d sockets are needed: lower -conns or -rooms, or raise the hard limit (ulimit -Hn)", l.Cur, l.Max, need)
	}
	l.Cur = l.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return fmt.Errorf("raise RLIMIT_NOFILE to %d: %w", l.Max, err)
	}
	return nil
}

// dial connects to url with token as a Bearer header.
func dial(ctx context.Context, url, token string) (*websocket.Conn, error) {
	d := websocket.Dialer{HandshakeTimeout: 30 * time.Second, ReadBufferSize: 4096, WriteBufferSize: 4096}
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	ws, resp, err := d.DialContext(ctx, url, h)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial %s: %w (HTTP %s)", url, err, resp.Status)
		}
		return nil, fmt.Errorf("dial %s: %w", url, err)
	}
	return ws, nil
}

// readFirst reads a socket's first frame, failing with the close reason
// when the server closes instead.
func readFirst(ws *websocket.Conn, timeout time.Duration) ([]byte, error) {
	_ = ws.SetReadDeadline(time.Now().Add(timeout))
	_, data, err := ws.ReadMessage()
	if err != nil {
		return nil, fmt.Errorf("first frame: %w", err)
	}
	_ = ws.SetReadDeadline(time.Time{})
	return data, nil
}
