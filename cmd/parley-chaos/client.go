package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parleychat/parley/adapters/jwtauth"
	"github.com/parleychat/parley/domain"
)

// message is a conversation entry as a client holds it.
type message struct {
	ID     string
	Role   string
	Text   string
	Status string
}

// client is one user in one room, following docs/protocol.md's client
// algorithm: it keeps the version and hash of the last frame, resumes with
// both after any close, replaces its state on every history frame, and
// resends a message whose echo it has not seen with the same client_id.
type client struct {
	base  string
	user  string
	token string
	room  int64

	mu       sync.Mutex
	version  int64
	hash     string
	msgs     []message
	index    map[string]int   // message id → msgs index
	acked    map[string]bool  // client ids echoed (or in a history)
	seen     map[int64]string // the hash first seen at each version
	pending  string           // client id sent, not yet echoed or refused for good
	texts    map[string]string
	answer   bool // an answer streams (as far as the client knows)
	sending  bool // new questions are sent
	asked    int
	gone     int              // resumes answered with a history: the position was gone
	goneAt   map[int64]string // the positions (version → hash) those resumes named
	probed   chan string
	lastDone time.Time // when the last answer ended, or a send was refused
	sentAt   time.Time // when pending was last sent
	fresh    bool      // the connection is new: resend pending at once
}

func newClient(base, user string, room int64) (*client, error) {
	tok, err := jwtauth.Mint([]byte(secret), user, 24*time.Hour, time.Now(), nil)
	if err != nil {
		return nil, err
	}
	return &client{base: base, user: user, token: tok, room: room, version: -1, index: map[string]int{},
		acked: map[string]bool{}, seen: map[int64]string{}, texts: map[string]string{}, goneAt: map[int64]string{}, sending: true}, nil
}

// createRoom creates a room for user over REST, retrying while chatd is
// unavailable.
func createRoom(ctx context.Context, base, user string) (int64, error) {
	tok, err := jwtauth.Mint([]byte(secret), user, time.Hour, time.Now(), nil)
	if err != nil {
		return 0, err
	}
	for attempt := 0; ; attempt++ {
		req, _ := http.NewRequestWithContext(ctx, "POST", base+"/api/rooms", strings.NewReader(`{"title":"Youth policies"}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			var r struct {
				ID int64 `json:"id"`
			}
			derr := json.NewDecoder(resp.Body).Decode(&r)
			resp.Body.Close()
			if resp.StatusCode == http.StatusCreated && derr == nil {
				return r.ID, nil
			}
			err = fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		if attempt > 100 || ctx.Err() != nil {
			return 0, fmt.Errorf("create a room for %s: %w", user, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// run connects and chats until ctx ends, reconnecting after every close.
func (c *client) run(ctx context.Context) {
	wait := 100 * time.Millisecond
	for ctx.Err() == nil {
		ws, err := c.dial(ctx)
		if err == nil {
			wait = 100 * time.Millisecond
			c.serve(ctx, ws)
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

func (c *client) dial(ctx context.Context) (*websocket.Conn, error) {
	u := "ws" + strings.TrimPrefix(c.base, "http") + "/ws/chat/" + strconv.FormatInt(c.room, 10) + "/"
	c.mu.Lock()
	if c.version >= 0 {
		q := url.Values{"after": {strconv.FormatInt(c.version, 10)}}
		if c.hash != "" {
			q.Set("hash", c.hash)
		}
		u += "?" + q.Encode()
	}
	c.mu.Unlock()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	ws, _, err := d.DialContext(ctx, u, http.Header{"Authorization": {"Bearer " + c.token}})
	return ws, err
}

// serve runs one connection until it ends.
func (c *client) serve(ctx context.Context, ws *websocket.Conn) {
	frames := make(chan []byte, 64)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(frames)
		for {
			_ = ws.SetReadDeadline(time.Now().Add(90 * time.Second))
			_, data, err := ws.ReadMessage()
			if err != nil {
				return
			}
			select {
			case frames <- data:
			case <-done:
				return
			}
		}
	})
	defer func() {
		close(done)
		ws.Close() // ends the reader's read
		wg.Wait()
	}()
	resumed := c.resuming()
	synced := false
	c.mu.Lock()
	c.fresh = true
	c.mu.Unlock()
	if resumed {
		if ws.WriteJSON(map[string]string{"type": "ping"}) != nil {
			return
		}
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case data, ok := <-frames:
			if !ok {
				return
			}
			typ := c.apply(data, resumed && !synced)
			if typ == "history" || typ == "pong" {
				synced = true
			}
		case <-tick.C:
		}
		if synced {
			if f := c.next(); f != nil {
				_ = ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
				if ws.WriteJSON(f) != nil {
					return
				}
			}
		}
	}
}

func (c *client) resuming() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.version >= 0
}

// next returns the message frame to send now, if any: the one not yet
// echoed (again, same client_id: a retry must be stored once), or a new
// question once the last answer has ended.
func (c *client) next() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.answer || time.Since(c.lastDone) < 200*time.Millisecond {
		return nil
	}
	if c.pending != "" && !c.fresh && time.Since(c.sentAt) < 3*time.Second {
		return nil // sent; its echo or refusal is to come
	}
	if c.pending == "" {
		if !c.sending {
			return nil
		}
		id, err := domain.NewUUID(rand.Reader)
		if err != nil {
			return nil
		}
		c.pending = id.String()
		c.asked++
		c.texts[c.pending] = fmt.Sprintf("What youth housing support is there? (question %d of room %d)", c.asked, c.room)
	}
	c.sentAt, c.fresh = time.Now(), false
	return map[string]string{"type": "message", "message": c.texts[c.pending], "client_id": c.pending}
}

type frame struct {
	Type     string `json:"type"`
	Version  *int64 `json:"version"`
	Hash     string `json:"hash"`
	ID       string `json:"id"`
	AnswerID string `json:"answer_id"`
	Message  string `json:"message"`
	ClientID string `json:"client_id"`
	Code     string `json:"code"`
	Messages []struct {
		ID       string `json:"id"`
		Role     string `json:"role"`
		Message  string `json:"message"`
		Status   string `json:"status"`
		ClientID string `json:"client_id"`
	} `json:"messages"`
}

// apply folds one server frame into the client's state and returns its
// type. resuming is true for the first frames of a resumed connection: a
// history among them means the server no longer held the position.
func (c *client) apply(data []byte, resuming bool) string {
	var f frame
	if err := json.Unmarshal(data, &f); err != nil {
		return ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if f.Type == "history" && resuming {
		c.gone++
		c.goneAt[c.version] = c.hash
	}
	if f.Version != nil {
		c.version, c.hash = *f.Version, f.Hash
		if _, ok := c.seen[*f.Version]; !ok {
			c.seen[*f.Version] = f.Hash // the first: a later one at this version means the log rewrote it
		}
	}
	switch f.Type {
	case "history":
		c.msgs, c.index = nil, map[string]int{}
		for _, m := range f.Messages {
			c.add(message{ID: m.ID, Role: m.Role, Text: m.Message, Status: m.Status})
			if m.ClientID != "" {
				c.echoed(m.ClientID)
			}
		}
		n := len(c.msgs)
		c.answer = n > 0 && c.msgs[n-1].Status == "streaming"
	case "message":
		c.add(message{ID: f.ID, Role: "user", Text: f.Message, Status: "complete"})
		c.echoed(f.ClientID)
		c.answer = true
	case "chunk":
		c.answerMsg(f.AnswerID).Text += f.Message
		c.answer = true
	case "answer", "answer_failed", "answer_cancelled":
		m := c.answerMsg(f.AnswerID)
		m.Status = map[string]string{"answer": "complete", "answer_failed": "failed", "answer_cancelled": "cancelled"}[f.Type]
		if f.Type == "answer" {
			m.Text = f.Message
		}
		c.answer, c.lastDone = false, time.Now()
		if c.probed != nil {
			select {
			case c.probed <- m.Status:
			default:
			}
		}
	case "error":
		// busy, rate_limited, unavailable, internal: not stored; the same
		// client_id goes again soon.
		if f.ClientID == c.pending {
			c.lastDone, c.sentAt = time.Now(), time.Time{}
		}
		if f.Code == "busy" && c.probed != nil {
			select {
			case c.probed <- "busy":
			default:
			}
		}
	}
	return f.Type
}

func (c *client) add(m message) {
	if i, ok := c.index[m.ID]; ok {
		c.msgs[i] = m
		return
	}
	c.index[m.ID] = len(c.msgs)
	c.msgs = append(c.msgs, m)
}

func (c *client) answerMsg(id string) *message {
	if _, ok := c.index[id]; !ok {
		c.add(message{ID: id, Role: "assistant", Status: "streaming"})
	}
	return &c.msgs[c.index[id]]
}

func (c *client) echoed(clientID string) {
	if clientID == "" {
		return
	}
	c.acked[clientID] = true
	if clientID == c.pending {
		c.pending = ""
	}
}

// quiesce stops new questions.
func (c *client) quiesce() {
	c.mu.Lock()
	c.sending = false
	c.mu.Unlock()
}

// settled reports whether the client has nothing in flight.
func (c *client) settled() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pending == "" && !c.answer
}

// probe asks one more question and returns how it ended: "complete" (or
// failed, cancelled) or "busy", or an error after timeout.
func (c *client) probe(ctx context.Context, timeout time.Duration) (string, error) {
	ch := make(chan string, 4)
	c.mu.Lock()
	c.probed = ch
	c.sending = true
	c.mu.Unlock()
	defer c.quiesce()
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case s := <-ch:
			if s == "busy" {
				return s, nil
			}
			c.mu.Lock()
			done := c.pending == ""
			c.mu.Unlock()
			if done {
				return s, nil
			}
		case <-t.C:
			return "", errors.New("no answer")
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

// goneHeld returns the positions resumes were told were gone that the
// log t holds after all (the same hash at the same version): none, when
// the server tells the truth.
func (c *client) goneHeld(t *truth) []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var held []int64
	for v, h := range c.goneAt {
		if th, ok := t.hashes[v]; ok && th == h && h != "" {
			held = append(held, v)
		}
	}
	return held
}

// snapshot returns a copy of the client's state.
func (c *client) snapshot() (int64, []message, map[string]bool, map[int64]string, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	msgs := append([]message(nil), c.msgs...)
	acked := make(map[string]bool, len(c.acked))
	for k, v := range c.acked {
		acked[k] = v
	}
	seen := make(map[int64]string, len(c.seen))
	for k, v := range c.seen {
		seen[k] = v
	}
	return c.version, msgs, acked, seen, c.gone
}
