package wsapi

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// conn is one client socket. Frames reach the writer goroutine through a
// queue that holds at most max frames and takes no memory while empty (an
// idle connection is cheap); until the connection is live (its catch-up
// queued) the hub's frames wait in pending.
type conn struct {
	ws      *websocket.Conn
	kind    string
	max     int
	wake    chan struct{} // signalled when the queue gains frames
	room    chan struct{} // signalled when the writer takes frames
	done    chan struct{}
	timing  Timing
	metrics Metrics

	mu         sync.Mutex
	queue      []frame
	live       bool
	pending    []frame
	lastQueued int64           // highest event version queued
	early      map[int64]frame // this process's chunks that came before the versions they follow

	reqOnce   sync.Once
	closeReq  chan struct{} // closed when someone asks the writer to close
	req       disconnect
	closeOnce sync.Once
	closeCode atomic.Int32
}

func newConn(ws *websocket.Conn, kind string, queue int, timing Timing, m Metrics) *conn {
	return &conn{ws: ws, kind: kind, max: queue, wake: make(chan struct{}, 1), room: make(chan struct{}, 1),
		done: make(chan struct{}), closeReq: make(chan struct{}), timing: timing, metrics: m, lastQueued: -1}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// enqueueLocked adds f to the queue, reporting false when it is full.
func (c *conn) enqueueLocked(f frame) bool {
	if len(c.queue) >= c.max {
		return false
	}
	c.queue = append(c.queue, f)
	signal(c.wake)
	return true
}

// push queues a frame from the hub without blocking; a full queue closes
// the connection (the client resumes with ?after=).
func (c *conn) push(f frame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.live {
		if f.data == nil || (f.version >= 0 && f.version <= c.lastQueued) {
			return // invisible, or already sent by the catch-up
		}
		c.pending = append(c.pending, f)
		if len(c.pending) > c.max {
			c.overflowLocked()
		}
		return
	}
	c.queueLocked(f)
	if len(c.early) > 0 {
		c.drainEarlyLocked()
	}
}

// has reports whether version v has been queued (or sent by the catch-up,
// or the client had it when it resumed); a frame for it would be dropped.
// lastQueued only grows, so a true answer stays true.
func (c *conn) has(v int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return v <= c.lastQueued
}

// maxEarly bounds the chunks a connection holds back waiting for the
// versions before them; past it, chunks wait for the log subscription.
const maxEarly = 64

// fast queues a chunk this process has just appended, before the log
// subscription brings it: only right after the version before it, so the
// client still sees every version once and in order. A chunk that comes
// before its predecessor is held until the predecessor is queued; the
// subscription's copy of a chunk already sent is dropped as a duplicate.
// A chunk that comes while the connection catches up is held too, until
// goLive: the client may already have the catch-up's frames.
func (c *conn) fast(f frame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f.version <= c.lastQueued {
		return
	}
	if c.live && f.version == c.lastQueued+1 {
		c.queueLocked(f)
		c.drainEarlyLocked()
		return
	}
	if len(c.early) >= maxEarly {
		return
	}
	if c.early == nil {
		c.early = make(map[int64]frame)
	}
	c.early[f.version] = f
}

// drainEarlyLocked queues the held chunks that now follow lastQueued and
// forgets those already sent.
func (c *conn) drainEarlyLocked() {
	for {
		f, ok := c.early[c.lastQueued+1]
		if !ok {
			break
		}
		delete(c.early, f.version)
		c.queueLocked(f)
	}
	for v := range c.early {
		if v <= c.lastQueued {
			delete(c.early, v)
		}
	}
	if len(c.early) == 0 {
		c.early = nil
	}
}

func (c *conn) queueLocked(f frame) {
	if f.version >= 0 {
		if f.version <= c.lastQueued {
			return // already sent by the catch-up
		}
		c.lastQueued = f.version
	}
	if f.data == nil {
		return // an event clients do not see
	}
	if !c.enqueueLocked(f) {
		c.overflowLocked()
	}
}

func (c *conn) overflowLocked() {
	c.metrics.SendQueueDrop()
	c.requestClose(discTooSlow)
}

// requestClose asks the writer goroutine to close the connection with d.
// It never blocks, so the hub and other connections never wait on a slow
// client's socket.
func (c *conn) requestClose(d disconnect) {
	c.reqOnce.Do(func() {
		c.req = d
		close(c.closeReq)
	})
}

// drainAndClose asks the writer to write the frames already queued and
// then close with d; when the queue is full it closes at once.
func (c *conn) drainAndClose(d disconnect) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.enqueueLocked(frame{version: -1, close: d}) {
		c.requestClose(d)
	}
}

// closeAfterQueued closes with d once the frames queued before it (an
// error frame saying why, say) are written, and waits for that, for at
// most the write deadline. The connection's reader calls it, so that the
// deferred close of a returning reader cannot overtake those frames.
func (c *conn) closeAfterQueued(d disconnect) {
	c.drainAndClose(d)
	t := time.NewTimer(2 * c.timing.WriteWait)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		c.requestClose(d)
	}
}

// resumeFrom records that the client holds every event up to version
// after: frames for them are dropped, those the hub delivered meanwhile
// included.
func (c *conn) resumeFrom(after int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if after > c.lastQueued {
		c.lastQueued = after
	}
	kept := c.pending[:0]
	for _, p := range c.pending {
		if p.version > after {
			kept = append(kept, p)
		}
	}
	c.pending = kept
}

// catchUp queues a catch-up frame, waiting for room in the queue; it
// reports false once the connection has ended.
func (c *conn) catchUp(f frame) bool {
	c.mu.Lock()
	if f.version >= 0 {
		if f.version <= c.lastQueued {
			c.mu.Unlock()
			return true
		}
		c.lastQueued = f.version
		// Frames the hub delivered meanwhile that this one covers are
		// dropped, so a catch-up during a busy answer does not overflow.
		kept := c.pending[:0]
		for _, p := range c.pending {
			if p.version > f.version {
				kept = append(kept, p)
			}
		}
		c.pending = kept
	}
	c.mu.Unlock()
	if f.data == nil {
		return true
	}
	for {
		c.mu.Lock()
		ok := c.enqueueLocked(f)
		c.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-c.room:
		case <-c.done:
			return false
		}
	}
}

// goLive queues what the hub delivered during the catch-up (minus what the
// catch-up already sent) and lets further frames through directly.
func (c *conn) goLive() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range c.pending {
		c.queueLocked(f)
	}
	c.pending = nil
	c.live = true
	if len(c.early) > 0 {
		c.drainEarlyLocked()
	}
}

// reply queues a non-event frame (error, pong) for this client.
func (c *conn) reply(f frame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.enqueueLocked(f) {
		c.overflowLocked()
	}
}

// take removes and returns the queued frames. The queue's memory always
// goes with them, so an idle connection holds none (see conn) and a burst
// does not pin it; the price is that the next frame queued allocates anew.
func (c *conn) take() []frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	fs := c.queue
	c.queue = nil
	signal(c.room)
	return fs
}

// closeWith sends a close frame and ends the connection; the first call
// wins. It may block for the write deadline, so only the connection's own
// goroutines call it; everyone else uses requestClose.
func (c *conn) closeWith(d disconnect) {
	c.closeOnce.Do(func() {
		c.closeCode.Store(int32(d.code))
		if d.code != websocket.CloseAbnormalClosure { // 1006 is never sent: the peer is gone or stuck
			_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(d.code, d.reason), time.Now().Add(c.timing.WriteWait))
		}
		close(c.done)
		_ = c.ws.Close()
	})
}

func (c *conn) code() int { return int(c.closeCode.Load()) }

// writeLoop is the connection's only writer of data frames and pings.
func (c *conn) writeLoop() {
	ping := time.NewTicker(c.timing.PingPeriod)
	defer ping.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-c.closeReq:
			c.closeWith(c.req)
			return
		case <-c.wake:
			for _, f := range c.take() {
				select { // a close request wins over queued frames
				case <-c.closeReq:
					c.closeWith(c.req)
					return
				default:
				}
				if f.close.code != 0 {
					c.closeWith(f.close)
					return
				}
				_ = c.ws.SetWriteDeadline(time.Now().Add(c.timing.WriteWait))
				if err := c.ws.WriteMessage(websocket.TextMessage, f.data); err != nil {
					c.closeWith(discGone)
					return
				}
				c.metrics.FrameOut(f.kind)
			}
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.timing.WriteWait)); err != nil {
				c.closeWith(discGone)
				return
			}
		}
	}
}
