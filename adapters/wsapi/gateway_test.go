package wsapi_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parleychat/parley/adapters/inmem"
	"github.com/parleychat/parley/adapters/origins"
	"github.com/parleychat/parley/adapters/wsapi"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/chat"
	"github.com/parleychat/parley/domain/room"
)

// auth accepts "user-<id>" tokens; "short-<id>" tokens expire in 300ms;
// "late-<id>" tokens expired 400ms ago (a verifier's leeway accepts them).
type auth struct{}

func (auth) Verify(_ context.Context, token string) (domain.Principal, error) {
	if id, ok := strings.CutPrefix(token, "user-"); ok {
		return domain.Principal{UserID: id, ExpiresAt: time.Now().Add(time.Hour)}, nil
	}
	if id, ok := strings.CutPrefix(token, "short-"); ok {
		return domain.Principal{UserID: id, ExpiresAt: time.Now().Add(300 * time.Millisecond)}, nil
	}
	if id, ok := strings.CutPrefix(token, "late-"); ok {
		return domain.Principal{UserID: id, ExpiresAt: time.Now().Add(-400 * time.Millisecond)}, nil
	}
	return domain.Principal{}, domain.Errorf(domain.EUNAUTHORIZED, "bad token")
}

// tickets accepts "good-<room id>" tickets and counts its Redeem calls.
type tickets struct{ redeemed atomic.Int32 }

func (tk *tickets) Redeem(_ context.Context, t string, room int64) (domain.Principal, error) {
	tk.redeemed.Add(1)
	if t == "good-"+strconv.FormatInt(room, 10) {
		return domain.Principal{UserID: "42"}, nil
	}
	return domain.Principal{}, domain.Errorf(domain.EUNAUTHORIZED, "unknown ticket")
}

// gen streams its tokens, each after a receive on gate.
type gen struct {
	tokens []string
	gate   chan struct{}
}

func (g *gen) Name() string { return "test" }
func (g *gen) Generate(ctx context.Context, _ chat.Prompt, emit func(string) error) error {
	for _, t := range g.tokens {
		select {
		case <-g.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
		if err := emit(t); err != nil {
			return err
		}
	}
	return nil
}

type env struct {
	url     string
	svc     *chat.Service
	store   *inmem.Store
	gen     *gen
	gw      *wsapi.Gateway
	tickets *tickets
}

func newEnv(t *testing.T, cfg wsapi.Config) *env { return startEnv(t, cfg, auth{}, nil) }

// startEnv serves the chat and audit endpoints over an in-memory store,
// which wrap, when not nil, wraps for everything but the test's own reads.
func startEnv(t *testing.T, cfg wsapi.Config, authn wsapi.Authenticator, wrap func(*inmem.Store) domain.EventStore) *env {
	t.Helper()
	mem := inmem.New(nil)
	var store domain.EventStore = mem
	if wrap != nil {
		store = wrap(mem)
	}
	g := &gen{tokens: []string{"Up ", "to ", "200,000 ", "won."}, gate: make(chan struct{}, 100)}
	hub := wsapi.NewHub(store, nil)
	svc := chat.NewService(chat.Config{ShutdownGrace: 10 * time.Millisecond}, chat.Deps{Store: hub.Tap(store), Generator: g, Now: time.Now, Random: rand.Reader})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { hub.Run(ctx) })
	wg.Go(func() { svc.Run(ctx) })
	<-hub.Ready()
	tk := &tickets{}
	gw := wsapi.New(cfg, wsapi.Deps{Hub: hub, Auth: authn, Tickets: tk, Rooms: svc, Audit: svc,
		History: wsapi.ProjectedHistory{Stream: store}, Stream: store})
	mux := http.NewServeMux()
	mux.Handle("GET /ws/chat/{room_id}/", gw.Chat())
	mux.Handle("GET /ws/audit/{room_id}/", gw.Audit())
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		gw.Shutdown(sctx)
		srv.Close()
		cancel()
		wg.Wait()
	})
	return &env{url: "ws" + strings.TrimPrefix(srv.URL, "http"), svc: svc, store: mem, gen: g, gw: gw, tickets: tk}
}

func (e *env) room(t *testing.T, owner string) int64 {
	t.Helper()
	r, err := e.svc.CreateRoom(t.Context(), owner, "Housing")
	if err != nil {
		t.Fatal(err)
	}
	return r.ID
}

func dial(t *testing.T, url string, h http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, Subprotocols: subprotocols(h)}
	c, resp, err := d.Dial(url, h)
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, resp, err
}

func subprotocols(h http.Header) []string {
	if h == nil {
		return nil
	}
	p := h.Values("X-Subprotocols")
	h.Del("X-Subprotocols")
	return p
}

// read reads the next frame as a map, failing after 5s.
func read(t *testing.T, c *websocket.Conn) map[string]any {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, data, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("frame %s: %v", data, err)
	}
	return m
}

// closeCode reads until the server closes and returns its close code.
func closeCode(t *testing.T, c *websocket.Conn) int {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code
			}
			t.Fatalf("read ended without a close frame: %v", err)
		}
	}
}

func send(t *testing.T, c *websocket.Conn, v any) {
	t.Helper()
	if err := c.WriteJSON(v); err != nil {
		t.Fatal(err)
	}
}

func TestCloseCodes(t *testing.T) {
	e := newEnv(t, wsapi.Config{AllowedOrigins: origins.MustParse("https://app.example"), MaxConnsPerUser: 100, MaxViolations: 3})
	id := e.room(t, "42")
	url := e.url + "/ws/chat/" + strconv.FormatInt(id, 10) + "/"
	tests := []struct {
		name string
		url  string
		h    http.Header
		code int
	}{
		{"missing token", url, nil, wsapi.CloseUnauthorized},
		{"invalid token", url + "?token=nope", nil, wsapi.CloseUnauthorized},
		{"not the owner", url + "?token=user-43", nil, wsapi.CloseForbidden},
		{"no such room", e.url + "/ws/chat/999/?token=user-42", nil, wsapi.CloseForbidden},
		{"bad ticket", url + "?ticket=bad", nil, wsapi.CloseUnauthorized},
		{"ticket for another room", url + "?ticket=good-1", nil, wsapi.CloseUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := dial(t, tc.url, tc.h)
			if err != nil {
				t.Fatal(err)
			}
			if got := closeCode(t, c); got != tc.code {
				t.Errorf("close code %d, want %d", got, tc.code)
			}
		})
	}
	t.Run("token expires while connected", func(t *testing.T) {
		c, _, _ := dial(t, url+"?token=short-42", nil)
		read(t, c) // history
		if got := closeCode(t, c); got != wsapi.CloseUnauthorized {
			t.Errorf("close code %d, want 4401", got)
		}
	})
	t.Run("foreign origin gets 403 and no upgrade", func(t *testing.T) {
		_, resp, err := dial(t, url+"?token=user-42", http.Header{"Origin": {"https://evil.example"}})
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("dial = %v, status %v; want HTTP 403", err, resp)
		}
		c, _, err := dial(t, url+"?token=user-42", http.Header{"Origin": {"https://app.example"}})
		if err != nil {
			t.Fatalf("allowed origin refused: %v", err)
		}
		if f := read(t, c); f["type"] != "history" {
			t.Errorf("first frame %v, want history", f)
		}
		// A page the server served itself (chatd's chat page) connects
		// whatever the list says.
		own := "http://" + strings.TrimPrefix(e.url, "ws://")
		c, _, err = dial(t, url+"?token=user-42", http.Header{"Origin": {own}})
		if err != nil {
			t.Fatalf("the server's own origin %s refused: %v", own, err)
		}
		if f := read(t, c); f["type"] != "history" {
			t.Errorf("first frame %v, want history", f)
		}
	})
	t.Run("frame too large", func(t *testing.T) {
		c, _, _ := dial(t, url+"?token=user-42", nil)
		read(t, c)
		c.WriteMessage(websocket.TextMessage, []byte(`{"message":"`+strings.Repeat("x", 70<<10)+`"}`))
		if got := closeCode(t, c); got != websocket.CloseMessageTooBig {
			t.Errorf("close code %d, want 1009", got)
		}
	})
	t.Run("invalid UTF-8", func(t *testing.T) {
		c, _, _ := dial(t, url+"?token=user-42", nil)
		read(t, c)
		c.WriteMessage(websocket.TextMessage, []byte("{\"message\":\"\xff\"}"))
		if got := closeCode(t, c); got != websocket.CloseInvalidFramePayloadData {
			t.Errorf("close code %d, want 1007", got)
		}
	})
	t.Run("repeated protocol violations", func(t *testing.T) {
		c, _, _ := dial(t, url+"?token=user-42", nil)
		read(t, c)
		for i, bad := range []string{`nope`, `{"type":"dance"}`, `{"message":""}`} {
			c.WriteMessage(websocket.TextMessage, []byte(bad))
			if i < 2 {
				if f := read(t, c); f["type"] != "error" || f["code"] != "invalid" {
					t.Errorf("after %s got %v, want an invalid error frame", bad, f)
				}
			}
		}
		if got := closeCode(t, c); got != websocket.ClosePolicyViolation {
			t.Errorf("close code %d, want 1008", got)
		}
	})
	t.Run("too many connections", func(t *testing.T) {
		// A server of its own, so sockets of earlier subtests still being
		// torn down do not count.
		e := newEnv(t, wsapi.Config{MaxConnsPerUser: 2})
		url := e.url + "/ws/chat/" + strconv.FormatInt(e.room(t, "77"), 10) + "/?token=user-77"
		a, _, _ := dial(t, url, nil)
		read(t, a)
		b, _, _ := dial(t, url, nil)
		read(t, b)
		c, _, _ := dial(t, url, nil)
		if got := closeCode(t, c); got != wsapi.CloseRateLimited {
			t.Errorf("close code %d, want 4429", got)
		}
	})
	t.Run("message rate", func(t *testing.T) {
		// A budget of one message; reconnecting does not renew it. One
		// socket per user, so the second is in only once the first is gone.
		e := newEnv(t, wsapi.Config{MessagesPerMinute: 1, MessageBurst: 1, MaxConnsPerUser: 1})
		url := e.url + "/ws/chat/" + strconv.FormatInt(e.room(t, "78"), 10) + "/?token=user-78"
		errorAfter := func(c *websocket.Conn, msg string) string {
			t.Helper()
			c.WriteMessage(websocket.TextMessage, []byte(`{"message":"`+msg+`"}`))
			for {
				if f := read(t, c); f["type"] == "error" {
					return fmt.Sprint(f["code"])
				}
			}
		}
		a, _, _ := dial(t, url, nil)
		read(t, a)
		a.WriteMessage(websocket.TextMessage, []byte(`{"message":"first"}`))
		if code := errorAfter(a, "second"); code != "rate_limited" {
			t.Errorf("second message: error %s, want rate_limited", code)
		}
		a.Close()
		var b *websocket.Conn
		for deadline := time.Now().Add(5 * time.Second); ; {
			b, _, _ = dial(t, url, nil)
			b.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, _, err := b.ReadMessage(); err == nil {
				break // the history: the first socket is released
			}
			if time.Now().After(deadline) {
				t.Fatal("the second socket was refused for 5s after the first closed")
			}
			time.Sleep(10 * time.Millisecond)
		}
		if code := errorAfter(b, "after reconnecting"); code != "rate_limited" {
			t.Errorf("after reconnecting: error %s, want rate_limited: a new socket must not renew the budget", code)
		}
	})
}

func TestTokenTransports(t *testing.T) {
	e := newEnv(t, wsapi.Config{})
	id := e.room(t, "42")
	url := e.url + "/ws/chat/" + strconv.FormatInt(id, 10) + "/"
	tests := []struct {
		name string
		url  string
		h    http.Header
	}{
		{"query token", url + "?token=user-42", nil},
		{"bearer header", url, http.Header{"Authorization": {"Bearer user-42"}}},
		{"subprotocol", url, http.Header{"X-Subprotocols": {wsapi.Subprotocol, "bearer." + base64.RawURLEncoding.EncodeToString([]byte("user-42"))}}},
		{"ticket", url + "?ticket=good-" + strconv.FormatInt(id, 10), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, resp, err := dial(t, tc.url, tc.h)
			if err != nil {
				t.Fatal(err)
			}
			if tc.name == "subprotocol" && resp.Header.Get("Sec-WebSocket-Protocol") != wsapi.Subprotocol {
				t.Errorf("selected subprotocol %q, want %s (never the bearer one)", resp.Header.Get("Sec-WebSocket-Protocol"), wsapi.Subprotocol)
			}
			if f := read(t, c); f["type"] != "history" {
				t.Errorf("first frame %v, want history", f)
			}
		})
	}
}

// TestConversation: history on connect, chunk order, two sockets see the
// same frames, resume mid-answer without gap or duplicate, a retried
// client_id is answered once, busy while streaming, cancel.
// Client ids of the tests' messages.
const (
	cid1    = "c7d9e1a2-3b4c-4d5e-8f60-718293a4b5c6"
	cidBusy = "0b9c2f4e-8d0a-4a51-9d7e-3c1f4b2a6e10"
)

func TestConversation(t *testing.T) {
	e := newEnv(t, wsapi.Config{})
	id := e.room(t, "42")
	url := e.url + "/ws/chat/" + strconv.FormatInt(id, 10) + "/?token=user-42"
	a, _, _ := dial(t, url, nil)
	b, _, _ := dial(t, url, nil)
	for _, c := range []*websocket.Conn{a, b} {
		if f := read(t, c); f["type"] != "history" || len(f["messages"].([]any)) != 0 || f["version"] != 0.0 {
			t.Fatalf("history = %v, want empty at version 0", f)
		}
	}
	send(t, a, map[string]any{"type": "message", "message": "How much is the housing allowance?", "client_id": cid1})
	var framesA, framesB []map[string]any
	msgA, msgB := read(t, a), read(t, b)
	if msgA["type"] != "message" || msgA["message"] != "How much is the housing allowance?" || msgA["client_id"] != cid1 {
		t.Fatalf("message frame %v", msgA)
	}
	framesA, framesB = append(framesA, msgA), append(framesB, msgB)
	for range 2 { // one delta at a time, so that each is a chunk of its own
		e.gen.gate <- struct{}{}
		framesA, framesB = append(framesA, read(t, a)), append(framesB, read(t, b))
	}
	// Mid-answer: a busy refusal, and a resume from the first chunk.
	send(t, a, map[string]any{"message": "another"})
	send(t, a, map[string]any{"message": "a third", "client_id": cidBusy})
	if f := read(t, a); f["type"] != "error" || f["code"] != "busy" {
		t.Errorf("second question while streaming: %v, want a busy error", f)
	}
	if f := read(t, a); f["type"] != "error" || f["code"] != "busy" || f["client_id"] != cidBusy {
		t.Errorf("second question while streaming: %v, want a busy error", f)
	}
	firstChunk := int(framesA[1]["version"].(float64))
	r, _, _ := dial(t, e.url+"/ws/chat/"+strconv.FormatInt(id, 10)+"/?token=user-42&after="+strconv.Itoa(firstChunk), nil)
	resumed := []map[string]any{read(t, r)}
	for range 2 {
		e.gen.gate <- struct{}{}
		framesA, framesB, resumed = append(framesA, read(t, a)), append(framesB, read(t, b)), append(resumed, read(t, r))
	}
	framesA, framesB, resumed = append(framesA, read(t, a)), append(framesB, read(t, b)), append(resumed, read(t, r))

	raw := func(fs []map[string]any) string { b, _ := json.Marshal(fs); return string(b) }
	if raw(framesA) != raw(framesB) {
		t.Errorf("two sockets saw different frames:\n%s\n%s", raw(framesA), raw(framesB))
	}
	if raw(resumed) != raw(framesA[2:]) {
		t.Errorf("resume after version %d:\n got %s\nwant %s", firstChunk, raw(resumed), raw(framesA[2:]))
	}
	var text string
	for i, f := range framesA[1:5] {
		if f["type"] != "chunk" || f["seq"] != float64(i) || f["is_streaming"] != true {
			t.Errorf("frame %d = %v, want chunk seq %d", i+1, f, i)
		}
		text += f["message"].(string)
	}
	last := framesA[5]
	if last["type"] != "answer" || last["is_streaming"] != false || last["message"] != text || text != "Up to 200,000 won." {
		t.Errorf("answer frame %v, chunks %q", last, text)
	}
	for i := 1; i < len(framesA); i++ {
		if framesA[i]["version"].(float64) <= framesA[i-1]["version"].(float64) {
			t.Errorf("versions not increasing at frame %d", i)
		}
	}

	// The retried client_id is stored once and answered once: nothing new.
	send(t, a, map[string]any{"type": "message", "message": "How much is the housing allowance?", "client_id": cid1})
	send(t, a, map[string]any{"type": "ping"})
	if f := read(t, a); f["type"] != "pong" {
		t.Errorf("after a retried client_id the next frame is %v, want only the pong", f)
	}

	// A new connection gets the whole conversation as history.
	h, _, _ := dial(t, url, nil)
	hist := read(t, h)
	msgs := hist["messages"].([]any)
	if len(msgs) != 2 || msgs[1].(map[string]any)["message"] != text || msgs[1].(map[string]any)["status"] != "complete" || hist["version"] != last["version"] {
		t.Errorf("history after the answer = %v", hist)
	}

	// Cancel: a new question, one chunk, then cancel.
	send(t, a, map[string]any{"message": "And jobs?"})
	read(t, a)
	e.gen.gate <- struct{}{}
	read(t, a)
	// A connect mid-answer sees the partial text as a streaming message.
	m, _, _ := dial(t, url, nil)
	mid := read(t, m)["messages"].([]any)
	if st := mid[3].(map[string]any); st["status"] != "streaming" || st["message"] != "Up " {
		t.Errorf("mid-answer history entry %v, want streaming with the partial text", st)
	}
	send(t, a, map[string]any{"type": "cancel"})
	if f := read(t, a); f["type"] != "answer_cancelled" || f["reason"] != "cancelled" || f["is_streaming"] != false {
		t.Errorf("after cancel: %v", f)
	}
	if f := read(t, m); f["type"] != "answer_cancelled" {
		t.Errorf("mid-answer socket after cancel: %v", f)
	}
}

// TestSlowClientIsClosed: frames that come faster than a client takes
// them overflow its queue, and the server closes the socket with 4000
// rather than wait for it. The log subscription is held while the answer
// streams, so that its frames then arrive in one burst.
func TestSlowClientIsClosed(t *testing.T) {
	var store *gatedStore
	e := startEnv(t, wsapi.Config{SendQueue: 4}, auth{}, func(m *inmem.Store) domain.EventStore {
		store = &gatedStore{Store: m}
		return store
	})
	e.gen.tokens = make([]string, 200)
	for i := range e.gen.tokens {
		e.gen.tokens[i] = strings.Repeat("y", 4000)
	}
	close(e.gen.gate) // every token flows at once
	id := e.room(t, "42")
	url := e.url + "/ws/chat/" + strconv.FormatInt(id, 10) + "/?token=user-42"
	c, _, _ := dial(t, url, nil)
	read(t, c)
	store.hold(t)
	if _, err := e.svc.Post(t.Context(), id, "42", "q", ""); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); !slices.Contains(e.streamTypes(t, id), room.TypeAnswerCompleted); {
		if time.Now().After(deadline) {
			t.Fatal("the answer did not complete in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	store.release()
	// The client reads only now: the server gave up on it meanwhile.
	if got := closeCode(t, c); got != wsapi.CloseTooSlow {
		t.Errorf("close code %d, want %d", got, wsapi.CloseTooSlow)
	}
}

// gatedStore holds the log subscription's deliveries while its gate is
// locked, as a global log waiting for a slower writer would.
type gatedStore struct {
	*inmem.Store
	gate sync.Mutex
	held atomic.Bool
}

// hold stops deliveries until release. A test that fails while holding
// them lets them go, or the hub would never stop and the env's cleanup
// would wait for it forever.
func (g *gatedStore) hold(t *testing.T) {
	g.gate.Lock()
	g.held.Store(true)
	t.Cleanup(func() {
		if g.held.CompareAndSwap(true, false) {
			g.gate.Unlock()
		}
	})
}

func (g *gatedStore) release() {
	g.held.Store(false)
	g.gate.Unlock()
}

func (g *gatedStore) SubscribeAll(ctx context.Context, opts domain.SubscribeAllOptions, h domain.Handler) error {
	return g.Store.SubscribeAll(ctx, opts, func(ctx context.Context, b []domain.RecordedEvent) error {
		g.gate.Lock()
		defer g.gate.Unlock()
		return h(ctx, b)
	})
}

// TestChunksBeforeTheSubscription: this process's chunks reach its sockets
// while the log subscription is held back, in version order, each once;
// chunks that come before the events they follow wait for them.
func TestChunksBeforeTheSubscription(t *testing.T) {
	var store *gatedStore
	e := startEnv(t, wsapi.Config{}, auth{}, func(m *inmem.Store) domain.EventStore {
		store = &gatedStore{Store: m}
		return store
	})
	svc, g := e.svc, e.gen
	r, err := svc.CreateRoom(t.Context(), "42", "Housing")
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := dial(t, e.url+"/ws/chat/"+strconv.FormatInt(r.ID, 10)+"/?token=user-42", nil)
	if err != nil {
		t.Fatal(err)
	}
	read(t, c) // history

	// The subscription is held: the question and the answer's start wait,
	// so the first chunk, appended meanwhile, must wait too.
	store.hold(t)
	if _, err := svc.Post(t.Context(), r.ID, "42", "How much?", ""); err != nil {
		t.Fatal(err)
	}
	g.gate <- struct{}{}
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, data, err := c.ReadMessage(); err == nil {
		t.Fatalf("got %s before the events it follows", data)
	}
	c.Close()
	store.release()
	// The next socket's history must hold that first chunk: the tap
	// sends a chunk only to sockets that have what it follows.
	e.waitForChunk(t, r.ID)

	c, _, err = dial(t, e.url+"/ws/chat/"+strconv.FormatInt(r.ID, 10)+"/?token=user-42", nil)
	if err != nil {
		t.Fatal(err)
	}
	h := read(t, c)
	// Held again: the next chunks arrive anyway, from the tap.
	store.hold(t)
	var got []map[string]any
	for range 2 {
		g.gate <- struct{}{}
		got = append(got, read(t, c))
	}
	store.release()
	g.gate <- struct{}{}
	got = append(got, read(t, c), read(t, c))
	want := int(h["version"].(float64)) + 1
	for i, f := range got {
		if int(f["version"].(float64)) != want+i {
			t.Fatalf("frame %d at version %v, want %d: %v", i, f["version"], want+i, got)
		}
	}
	if got[3]["type"] != "answer" {
		t.Errorf("last frame %v, want the answer", got[3])
	}
	send(t, c, map[string]any{"type": "ping"})
	if f := read(t, c); f["type"] != "pong" {
		t.Errorf("after the answer: %v, want no duplicate, only the pong", f)
	}
}

// waitForChunk waits until room id's stream holds an answer chunk.
func (e *env) waitForChunk(t *testing.T, id int64) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !slices.Contains(e.streamTypes(t, id), room.TypeAnswerChunk); {
		if time.Now().After(deadline) {
			t.Fatalf("no answer chunk in room %d after 5s", id)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestResumeSkipsWhatTheClientHas: events at or before ?after= that the
// log subscription delivers only after the socket connected are not sent.
func TestResumeSkipsWhatTheClientHas(t *testing.T) {
	var store *gatedStore
	e := startEnv(t, wsapi.Config{}, auth{}, func(m *inmem.Store) domain.EventStore {
		store = &gatedStore{Store: m}
		return store
	})
	id := e.room(t, "42")
	store.hold(t) // the subscription has not delivered the question yet
	res, err := e.svc.Post(t.Context(), id, "42", "How much?", "")
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := dial(t, e.url+"/ws/chat/"+strconv.FormatInt(id, 10)+"/?token=user-42&after="+strconv.FormatInt(res.Version, 10), nil)
	if err != nil {
		t.Fatal(err)
	}
	send(t, c, map[string]any{"type": "ping"})
	if f := read(t, c); f["type"] != "pong" {
		t.Fatalf("first frame %v, want the pong", f)
	}
	store.release() // now it delivers the question, which the client has
	send(t, c, map[string]any{"type": "ping"})
	if f := read(t, c); f["type"] != "pong" {
		t.Errorf("after the subscription caught up: %v, want only the pong", f)
	}
}
