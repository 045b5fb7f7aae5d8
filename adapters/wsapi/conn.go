package wsapi

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Close codes of the protocol (docs/protocol.md).
const (
	CloseUnauthorized = 4401
	CloseForbidden    = 4403
	CloseRateLimited  = 4429
	CloseTooSlow      = 4000
)

// conn is one client socket. Frames reach the writer goroutine through
// send; until the connection is live (its catch-up queued) the hub's
// frames wait in pending.
type conn struct {
	ws      *websocket.Conn
	kind    string
	send    chan frame
	done    chan struct{}
	timing  Timing
	metrics Metrics

	mu         sync.Mutex
	live       bool
	pending    []frame
	lastQueued int64 // highest event version queued

	reqOnce   sync.Once
	closeReq  chan struct{} // closed when someone asks the writer to close
	reqCode   int
	reqReason string
	closeOnce sync.Once
	closeCode atomic.Int32
}

func newConn(ws *websocket.Conn, kind string, queue int, timing Timing, m Metrics) *conn {
	return &conn{ws: ws, kind: kind, send: make(chan frame, queue), done: make(chan struct{}), closeReq: make(chan struct{}),
		timing: timing, metrics: m, lastQueued: -1}
}

// push queues a frame from the hub without blocking; a full queue closes
// the connection (the client resumes with ?after=).
func (c *conn) push(f frame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.live {
		c.pending = append(c.pending, f)
		if len(c.pending) > cap(c.send) {
			c.overflowLocked()
		}
		return
	}
	c.queueLocked(f)
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
	select {
	case c.send <- f:
	default:
		c.overflowLocked()
	}
}

func (c *conn) overflowLocked() {
	c.metrics.SendQueueDrop()
	c.requestClose(CloseTooSlow, "client too slow; reconnect with ?after=<last version seen>")
}

// requestClose asks the writer goroutine to close the connection with code.
// It never blocks, so the hub and other connections never wait on a slow
// client's socket.
func (c *conn) requestClose(code int, reason string) {
	c.reqOnce.Do(func() {
		c.reqCode, c.reqReason = code, reason
		close(c.closeReq)
	})
}

// drainAndClose asks the writer to write the frames already queued and
// then close with code; when the queue is full it closes at once.
func (c *conn) drainAndClose(code int, reason string) {
	select {
	case c.send <- frame{version: -1, close: code, data: []byte(reason)}:
	default:
		c.requestClose(code, reason)
	}
}

// catchUp queues a catch-up frame, waiting for room in the queue.
func (c *conn) catchUp(f frame) bool {
	c.mu.Lock()
	if f.version >= 0 {
		if f.version <= c.lastQueued {
			c.mu.Unlock()
			return true
		}
		c.lastQueued = f.version
	}
	c.mu.Unlock()
	if f.data == nil {
		return true
	}
	select {
	case c.send <- f:
		return true
	case <-c.done:
		return false
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
}

// reply queues a non-event frame (error, pong) for this client.
func (c *conn) reply(f frame) {
	select {
	case c.send <- f:
	case <-c.done:
	default:
		c.mu.Lock()
		c.overflowLocked()
		c.mu.Unlock()
	}
}

// closeWith sends a close frame and ends the connection; the first call
// wins. It may block for the write deadline, so only the connection's own
// goroutines call it; everyone else uses requestClose.
func (c *conn) closeWith(code int, reason string) {
	c.closeOnce.Do(func() {
		c.closeCode.Store(int32(code))
		_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(c.timing.WriteWait))
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
		select { // a close request wins over queued frames
		case <-c.closeReq:
			c.closeWith(c.reqCode, c.reqReason)
			return
		default:
		}
		select {
		case <-c.done:
			return
		case <-c.closeReq:
			c.closeWith(c.reqCode, c.reqReason)
			return
		case f := <-c.send:
			if f.close != 0 {
				c.closeWith(f.close, string(f.data))
				return
			}
			_ = c.ws.SetWriteDeadline(time.Now().Add(c.timing.WriteWait))
			if err := c.ws.WriteMessage(websocket.TextMessage, f.data); err != nil {
				c.closeWith(websocket.CloseAbnormalClosure, "")
				return
			}
			c.metrics.FrameOut(f.kind)
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.timing.WriteWait)); err != nil {
				c.closeWith(websocket.CloseAbnormalClosure, "")
				return
			}
		}
	}
}
