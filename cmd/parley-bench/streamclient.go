package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parleychat/parley/domain"
)

// benchQuestion is what every client asks, with its tag after it.
const benchQuestion = "How much is the youth housing allowance, and who can get it?"

// roomClient is one room's client: its owner, and one WebSocket with a
// goroutine that reads it all the time (so that the client answers
// chatd's pings even while it does not ask) and hands the frames to ask.
type roomClient struct {
	side   string
	index  int
	id     int64
	user   string
	ws     *websocket.Conn
	asks   int
	frames chan frameIn  // from the reader
	done   chan struct{} // closed when the reader has ended
}

// frameIn is a frame as the reader received it, or the error that ended
// the reading.
type frameIn struct {
	data []byte
	at   int64 // when it arrived, in model-server time
	err  error
}

// startReading starts the socket's reader; close stops it.
func (c *roomClient) startReading(m *modelServer) {
	c.frames, c.done = make(chan frameIn, 4096), make(chan struct{})
	go func() { // owned: close waits for done
		defer close(c.done)
		for {
			_, data, err := c.ws.ReadMessage()
			c.frames <- frameIn{data: data, at: m.now(), err: err}
			if err != nil {
				return
			}
		}
	}()
}

// close closes the socket and waits for its reader.
func (c *roomClient) close() {
	_ = c.ws.Close()
	if c.done != nil {
		for {
			select {
			case <-c.done:
				return
			case <-c.frames: // unblock the reader
			}
		}
	}
}

// answerRecord is what a client saw of one answer. Times count
// nanoseconds from the model server's epoch.
type answerRecord struct {
	plan       *answerPlan
	askedAt    int64
	firstChunk int64   // 0: no chunk arrived
	recv       []int64 // when token i arrived; 0: never
	dups       int     // tokens received again
	reordered  int     // tokens received after a later one
	corrupt    int     // chunks whose text is not the plan's
	notice     bool    // chatd said it had no sources (retrieval failed)
	outcome    string  // the final frame's type: answer, answer_failed, answer_cancelled
}

// chunkMsg is the part of a server frame the clients read.
type chunkMsg struct {
	Type     string `json:"type"`
	AnswerID string `json:"answer_id"`
	Seq      int    `json:"seq"`
	Deltas   int    `json:"deltas"`
	Message  string `json:"message"`
	Code     string `json:"code"`
}

// createRoom creates a room for user over chatd's REST API and connects
// its client, which reads the history frame.
func createRoom(ctx context.Context, c *chatdProc, m *modelServer, side string, index int, user, token string) (*roomClient, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/api/rooms", strings.NewReader(`{"title":"Bench `+user+`"}`))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("create a room: %w", err)
	}
	defer resp.Body.Close()
	var created struct {
		ID int64 `json:"id"`
	}
	if resp.StatusCode != http.StatusCreated {
		return nil, fmt.Errorf("create a room: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&created); err != nil {
		return nil, fmt.Errorf("create a room: %w", err)
	}
	url := "ws" + strings.TrimPrefix(c.base, "http") + "/ws/chat/" + strconv.FormatInt(created.ID, 10) + "/"
	ws, err := dial(ctx, url, token)
	if err != nil {
		return nil, err
	}
	data, err := readFirst(ws, time.Minute)
	if err == nil && !strings.HasPrefix(string(data), `{"type":"history"`) {
		err = fmt.Errorf("first frame %.80s, want the history", data)
	}
	if err != nil {
		_ = ws.Close()
		return nil, err
	}
	cl := &roomClient{side: side, index: index, id: created.ID, user: user, ws: ws}
	cl.startReading(m)
	return cl, nil
}

// ask posts a question whose answer follows a fresh plan of n tokens
// (period apart, the first ttft after the model's request), and reads the
// frames until the answer ends.
func (c *roomClient) ask(m *modelServer, n int, period, ttft time.Duration) (*answerRecord, error) {
	c.asks++
	tag := fmt.Sprintf("%s-r%d-q%d", c.side, c.index, c.asks)
	p := m.plan(tag, n, period, ttft)
	defer m.forget(tag)
	rec := &answerRecord{plan: p, recv: make([]int64, n)}
	_ = c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	rec.askedAt = m.now()
	clientID := domain.NameUUID(domain.UUID{}, "parley-bench question "+tag).String() // a UUID, as the protocol wants
	if err := c.ws.WriteJSON(map[string]string{"type": "message", "message": benchQuestion + " (#" + tag + ")", "client_id": clientID}); err != nil {
		return rec, fmt.Errorf("room %d: send the question: %w", c.id, err)
	}
	next, base := 0, 0 // the next token expected; chunks before the model's (a notice)
	timeout := time.NewTimer(time.Minute)
	defer timeout.Stop()
	for {
		var in frameIn
		select {
		case in = <-c.frames:
		case <-timeout.C:
			return rec, fmt.Errorf("room %d: no frame for a minute", c.id)
		}
		data, at, err := in.data, in.at, in.err
		if err != nil {
			if ce := (*websocket.CloseError)(nil); errors.As(err, &ce) {
				return rec, fmt.Errorf("room %d: chatd closed the socket: %d %s", c.id, ce.Code, ce.Text)
			}
			return rec, fmt.Errorf("room %d: read: %w", c.id, err)
		}
		var f chunkMsg
		if err := json.Unmarshal(data, &f); err != nil {
			return rec, fmt.Errorf("room %d: frame %.80s: %w", c.id, data, err)
		}
		switch f.Type {
		case "message": // our question, from the log
		case "chunk":
			if rec.firstChunk == 0 {
				rec.firstChunk = at
			}
			count := max(f.Deltas, 1)
			if f.Seq == 0 && count == 1 && (n == 0 || f.Message != p.tokens[0]) && base == 0 && next == 0 {
				rec.notice, base = true, 1 // "no sources": chatd's own first delta
				continue
			}
			next = rec.received(f.Seq-base, count, f.Message, at, next)
		case "answer", "answer_failed", "answer_cancelled":
			rec.outcome = f.Type
			return rec, nil
		case "error":
			return rec, fmt.Errorf("room %d: chatd refused the question: %s: %s", c.id, f.Code, f.Message)
		default:
			return rec, fmt.Errorf("room %d: unexpected frame %.120s", c.id, data)
		}
	}
}

// received records a chunk of count tokens from first, whose text is
// text, arriving at at, and returns the next token expected.
func (r *answerRecord) received(first, count int, text string, at int64, next int) int {
	toks := r.plan.tokens
	if first < 0 || first+count > len(toks) {
		r.corrupt++
		return next
	}
	start := 0
	if first > 0 {
		start = r.plan.ends[first-1]
	}
	if r.plan.text[start:r.plan.ends[first+count-1]] != text {
		r.corrupt++
		return next
	}
	for i := first; i < first+count; i++ {
		switch {
		case r.recv[i] != 0:
			r.dups++
		default:
			r.recv[i] = at
			if i < next {
				r.reordered++
			}
		}
	}
	return max(next, first+count)
}
