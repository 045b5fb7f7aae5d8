package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/adapters/document"
	"github.com/parleychat/parley/adapters/jwtauth"
	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/adapters/postgres/pgtest"
	"github.com/parleychat/parley/adapters/redis/redistest"
	"github.com/parleychat/parley/adapters/tokens"
	"github.com/parleychat/parley/adapters/wsapi"
	"github.com/parleychat/parley/cmd/internal/ragenv"
	"github.com/parleychat/parley/cmd/internal/stack"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/domaintest"
	"github.com/parleychat/parley/domain/rag"
	"github.com/parleychat/parley/domain/rag/ragtest"
	"github.com/parleychat/parley/domain/room"
)

// These tests run chatd as `run` does, on port 0 against a fresh Postgres
// database, and talk to it over loopback with a real WebSocket client.

const testSecret = "e2e-test-secret-0123456789abcdef0123456789"

// testDataKey is the tests' KEK (PARLEY_DATA_KEY): 32 bytes in hex.
const testDataKey = "7465737420646174612b6b65792d303132333435363738396162636465663031"

type chatd struct {
	base   string // http://127.0.0.1:port
	dbURL  string
	stop   func() error  // shuts chatd down and returns serve's error
	exited chan struct{} // closed when serve has returned, stopped or not
	logBuf *domaintest.SyncBuffer
}

// startChatd starts chatd on dbURL with env on top of the test defaults.
func startChatd(t *testing.T, dbURL string, env map[string]string) *chatd {
	t.Helper()
	return startChatdWith(t, dbURL, env, nil)
}

// startChatdWith is startChatd with tune, when not nil, applied to the
// parsed configuration: for what only code sets (stack.Config.Now).
func startChatdWith(t *testing.T, dbURL string, env map[string]string, tune func(*stack.Config)) *chatd {
	t.Helper()
	vars := map[string]string{
		"PARLEY_HTTP_ADDR":           "127.0.0.1:0",
		"PARLEY_DATABASE_URL":        dbURL,
		"PARLEY_JWT_SECRET":          testSecret,
		"PARLEY_DATA_KEY":            testDataKey,
		"PARLEY_OFFLINE_TOKEN_DELAY": "5ms",
		"PARLEY_SHUTDOWN_GRACE":      "2s",
		"PARLEY_SHUTDOWN_TIMEOUT":    "10s",
		"PARLEY_LOG_LEVEL":           "debug",
		"PARLEY_REDIS_URL":           redistest.URL(),
		"PARLEY_REDIS_PREFIX":        redistest.Prefix(t, redistest.Client(t)),
	}
	for k, v := range env {
		vars[k] = v
	}
	cfg, err := parseConfig(nil, func(k string) string { return vars[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if tune != nil {
		tune(&cfg)
	}
	logs := &domaintest.SyncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := stack.New(ctx, cfg, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	addr := make(chan net.Addr, 1)
	done := make(chan error, 1)
	c := &chatd{dbURL: dbURL, logBuf: logs, exited: make(chan struct{})}
	go func() {
		defer close(c.exited)
		done <- s.Serve(ctx, func(a net.Addr) { addr <- a })
	}()
	select {
	case a := <-addr:
		c.base = "http://" + a.String()
	case err := <-done:
		cancel()
		t.Fatalf("chatd did not start: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("chatd did not start within 30s")
	}
	var stopped bool
	var stopErr error
	c.stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(30 * time.Second):
				stopErr = errors.New("chatd did not stop within 30s")
			}
		}
		return stopErr
	}
	t.Cleanup(func() {
		if err := c.stop(); err != nil {
			t.Errorf("chatd stopped with: %v", err)
		}
		if strings.Contains(logs.String(), testSecret) {
			t.Error("the JWT secret appears in chatd's logs")
		}
	})
	return c
}

func token(t *testing.T, user string, ttl time.Duration) string {
	t.Helper()
	tok, err := jwtauth.Mint([]byte(testSecret), user, ttl, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// api calls the REST API and decodes the JSON answer into out.
func (c *chatd) api(t *testing.T, method, path, tok, body string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %s: %v", method, path, data, err)
		}
	}
	return resp.StatusCode
}

func (c *chatd) createRoom(t *testing.T, tok string) int64 {
	t.Helper()
	var r struct {
		ID int64 `json:"id"`
	}
	if code := c.api(t, "POST", "/api/rooms", tok, `{"title":"Youth housing"}`, &r); code != http.StatusCreated {
		t.Fatalf("POST /api/rooms = %d", code)
	}
	return r.ID
}

func (c *chatd) wsURL(id int64, query string) string {
	u := "ws" + strings.TrimPrefix(c.base, "http") + "/ws/chat/" + strconv.FormatInt(id, 10) + "/"
	if query != "" {
		u += "?" + query
	}
	return u
}

func dialWS(t *testing.T, url string, h http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	ws, resp, err := d.Dial(url, h)
	if err == nil {
		t.Cleanup(func() { ws.Close() })
	}
	return ws, resp, err
}

func connect(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	ws, _, err := dialWS(t, url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	return ws
}

type frameMap = map[string]any

func readFrame(t *testing.T, ws *websocket.Conn) frameMap {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, data, err := ws.ReadMessage()
	if err != nil {
		t.Fatalf("read frame: %v", err)
	}
	var f frameMap
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("frame %s: %v", data, err)
	}
	return f
}

// readAnswer reads frames up to and including the answer's last frame.
func readAnswer(t *testing.T, ws *websocket.Conn) []frameMap {
	t.Helper()
	var fs []frameMap
	for {
		f := readFrame(t, ws)
		fs = append(fs, f)
		if f["is_streaming"] == false {
			return fs
		}
	}
}

func expectClose(t *testing.T, ws *websocket.Conn, want int) {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, _, err := ws.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("connection ended without a close frame: %v (want %d)", err, want)
		}
		if ce.Code != want {
			t.Fatalf("close code %d (%q), want %d", ce.Code, ce.Text, want)
		}
		return
	}
}

func send(t *testing.T, ws *websocket.Conn, v any) {
	t.Helper()
	if err := ws.WriteJSON(v); err != nil {
		t.Fatal(err)
	}
}

func version(f frameMap) int64 { v, _ := f["version"].(float64); return int64(v) }

func TestChatEndToEnd(t *testing.T) {
	c := startChatd(t, pgtest.NewDatabase(t), nil)
	tok := token(t, "42", time.Hour)
	id := c.createRoom(t, tok)

	// Connecting right after creating works: the owner check reads the log.
	a := connect(t, c.wsURL(id, "token="+tok))
	b := connect(t, c.wsURL(id, "token="+tok))
	for _, ws := range []*websocket.Conn{a, b} {
		if h := readFrame(t, ws); h["type"] != "history" || len(h["messages"].([]any)) != 0 {
			t.Fatalf("first frame %v, want an empty history", h)
		}
	}
	q := "How much is the youth monthly rent support?"
	send(t, a, map[string]any{"type": "message", "message": q, "client_id": "8f0e6a1c-0000-4000-8000-000000000001"})
	fa, fb := readAnswer(t, a), readAnswer(t, b)
	if ja, jb := mustJSON(fa), mustJSON(fb); ja != jb {
		t.Errorf("two sockets on one room saw different frames:\n%s\n%s", ja, jb)
	}
	if fa[0]["type"] != "message" || fa[0]["message"] != q || fa[0]["role"] != "user" {
		t.Fatalf("first frame %v, want the question", fa[0])
	}
	var text strings.Builder
	chunks := fa[1 : len(fa)-1]
	if len(chunks) < 2 {
		t.Fatalf("got %d chunks, want a streamed answer", len(chunks))
	}
	seq := 0.0 // deltas so far: a chunk may carry several
	for _, f := range chunks {
		if f["type"] != "chunk" || f["seq"] != seq || f["is_streaming"] != true || f["deltas"].(float64) < 1 {
			t.Fatalf("frame %v, want a chunk from seq %v", f, seq)
		}
		seq += f["deltas"].(float64)
		text.WriteString(f["message"].(string))
	}
	last := fa[len(fa)-1]
	if last["type"] != "answer" || last["message"] != text.String() || last["is_streaming"] != false {
		t.Fatalf("last frame %v, want the full answer %q", last, text.String())
	}
	for i := 1; i < len(fa); i++ {
		if version(fa[i]) <= version(fa[i-1]) {
			t.Fatalf("versions do not increase at frame %d: %v", i, fa)
		}
	}

	// The same client_id again is stored once and answered once.
	send(t, a, map[string]any{"type": "message", "message": q, "client_id": "8f0e6a1c-0000-4000-8000-000000000001"})
	send(t, a, map[string]any{"type": "ping"})
	if f := readFrame(t, a); f["type"] != "pong" {
		t.Fatalf("after a retried client_id: %v, want only the pong", f)
	}

	// A new socket gets the conversation as history at the last version.
	h := readFrame(t, connect(t, c.wsURL(id, "token="+tok)))
	msgs := h["messages"].([]any)
	if len(msgs) != 2 || msgs[1].(map[string]any)["message"] != text.String() || version(h) != version(last) {
		t.Fatalf("history %v, want the question and answer at version %d", h, version(last))
	}

	// The REST API serves the room and, once projected, its messages.
	var rooms struct {
		Rooms []struct {
			ID int64 `json:"id"`
		} `json:"rooms"`
	}
	var page struct {
		Messages []map[string]any `json:"messages"`
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.api(t, "GET", "/api/rooms", tok, "", &rooms)
		c.api(t, "GET", fmt.Sprintf("/api/rooms/%d/messages", id), tok, "", &page)
		if len(rooms.Rooms) == 1 && len(page.Messages) == 2 && page.Messages[0]["status"] == "complete" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("REST never showed the conversation: rooms %v, messages %v", rooms, page)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if page.Messages[0]["message"] != text.String() || page.Messages[1]["message"] != q {
		t.Errorf("messages page %v, want the answer then the question (newest first)", page.Messages)
	}
	if code := c.api(t, "GET", fmt.Sprintf("/api/rooms/%d", id), token(t, "43", time.Hour), "", nil); code != http.StatusForbidden && code != http.StatusNotFound {
		t.Errorf("another user's GET of the room = %d, want 403 or 404", code)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestCloseCodesEndToEnd(t *testing.T) {
	c := startChatd(t, pgtest.NewDatabase(t), map[string]string{
		"PARLEY_ALLOWED_ORIGINS":    "https://app.example",
		"PARLEY_MAX_CONNS_PER_USER": "2",
	})
	tok := token(t, "42", time.Hour)
	id := c.createRoom(t, tok)
	other := c.createRoom(t, token(t, "7", time.Hour))

	tests := []struct {
		name string
		url  string
		code int
	}{
		{"missing token", c.wsURL(id, ""), wsapi.CloseUnauthorized},
		{"invalid token", c.wsURL(id, "token=not.a.jwt"), wsapi.CloseUnauthorized},
		{"expired token", c.wsURL(id, "token="+expired(t, "42")), wsapi.CloseUnauthorized},
		{"token signed with another secret", c.wsURL(id, "token="+mintWith(t, "another-secret-0123456789abcdef0123456789", "42")), wsapi.CloseUnauthorized},
		{"not the owner", c.wsURL(other, "token="+tok), wsapi.CloseForbidden},
		{"no such room", c.wsURL(id+1_000_000, "token="+tok), wsapi.CloseForbidden},
		{"used ticket", c.wsURL(id, "ticket=deadbeef"), wsapi.CloseUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			expectClose(t, connect(t, tc.url), tc.code)
		})
	}

	t.Run("foreign origin gets HTTP 403", func(t *testing.T) {
		_, resp, err := dialWS(t, c.wsURL(id, "token="+tok), http.Header{"Origin": {"https://evil.example"}})
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("dial: %v, %v; want HTTP 403 and no upgrade", err, resp)
		}
	})
	t.Run("ticket works once", func(t *testing.T) {
		var tk struct {
			Ticket string `json:"ticket"`
		}
		if code := c.api(t, "POST", fmt.Sprintf("/api/rooms/%d/ticket", id), tok, "", &tk); code != http.StatusCreated {
			t.Fatalf("ticket: %d", code)
		}
		ws, _, err := dialWS(t, c.wsURL(id, "ticket="+tk.Ticket), http.Header{"Origin": {"https://app.example"}})
		if err != nil {
			t.Fatal(err)
		}
		if f := readFrame(t, ws); f["type"] != "history" {
			t.Fatalf("with a ticket: %v", f)
		}
		ws.Close()
		expectClose(t, connect(t, c.wsURL(id, "ticket="+tk.Ticket)), wsapi.CloseUnauthorized)
	})
	t.Run("frame too large", func(t *testing.T) {
		ws := connect(t, c.wsURL(id, "token="+tok))
		readFrame(t, ws)
		_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"message":"`+strings.Repeat("x", 70<<10)+`"}`))
		expectClose(t, ws, websocket.CloseMessageTooBig)
	})
	t.Run("invalid UTF-8", func(t *testing.T) {
		ws := connect(t, c.wsURL(id, "token="+tok))
		readFrame(t, ws)
		_ = ws.WriteMessage(websocket.TextMessage, []byte("{\"message\":\"\xc3\x28\"}"))
		expectClose(t, ws, websocket.CloseInvalidFramePayloadData)
	})
	t.Run("bad frames get errors, then 1008, and nothing is appended", func(t *testing.T) {
		ws := connect(t, c.wsURL(id, "token="+tok))
		h := readFrame(t, ws)
		for _, bad := range []string{`nope`, `{"type":"dance"}`, `{"message":""}`, `{"message":"a\u0000b"}`, `{"message":"` + strings.Repeat("가", 3000) + `"}`} {
			_ = ws.WriteMessage(websocket.TextMessage, []byte(bad))
			if strings.HasPrefix(bad, `{"message":"가`) {
				break // the fifth violation closes instead of answering
			}
			if f := readFrame(t, ws); f["type"] != "error" {
				t.Fatalf("after %.40s: %v, want an error frame", bad, f)
			}
		}
		expectClose(t, ws, websocket.ClosePolicyViolation)
		if v := headVersion(t, c, id); v != version(h) {
			t.Errorf("room stream at version %d after bad frames, want %d (nothing appended)", v, version(h))
		}
	})
	t.Run("too many connections", func(t *testing.T) {
		u := token(t, "99", time.Hour)
		r := c.createRoom(t, u)
		for range 2 {
			readFrame(t, connect(t, c.wsURL(r, "token="+u)))
		}
		expectClose(t, connect(t, c.wsURL(r, "token="+u)), wsapi.CloseRateLimited)
	})
	t.Run("token expires while connected", func(t *testing.T) {
		// One leeway (30s) for REST and socket: a token that expired 28s
		// ago is served by both, and the socket closes when REST would
		// start refusing it, 2s from now.
		tok, err := jwtauth.Mint([]byte(testSecret), "42", 2*time.Second, time.Now().Add(-jwtauth.DefaultLeeway), nil)
		if err != nil {
			t.Fatal(err)
		}
		if code := c.api(t, "GET", fmt.Sprintf("/api/rooms/%d", id), tok, "", nil); code != http.StatusOK {
			t.Fatalf("REST with a token expired 28s ago: %d, want 200", code)
		}
		ws := connect(t, c.wsURL(id, "token="+tok))
		readFrame(t, ws)
		start := time.Now()
		expectClose(t, ws, wsapi.CloseUnauthorized)
		if d := time.Since(start); d < time.Second {
			t.Errorf("closed after %v, want about 2s: the socket's leeway must be REST's", d)
		}
		time.Sleep(time.Second)
		if code := c.api(t, "GET", fmt.Sprintf("/api/rooms/%d", id), tok, "", nil); code != http.StatusUnauthorized {
			t.Errorf("REST after the socket closed: %d, want 401", code)
		}
	})
}

func expired(t *testing.T, user string) string {
	t.Helper()
	tok, err := jwtauth.Mint([]byte(testSecret), user, time.Hour, time.Now().Add(-2*time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func mintWith(t *testing.T, secret, user string) string {
	t.Helper()
	tok, err := jwtauth.Mint([]byte(secret), user, time.Hour, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// readStream reads a room's stream straight from the database.
func readStream(t *testing.T, c *chatd, id int64) []domain.RecordedEvent {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), c.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	st := postgres.NewStore(pool, postgres.StoreConfig{})
	defer st.Close()
	evs, err := st.ReadStream(context.Background(), room.Stream(id), domain.ReadStreamOptions{Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func headVersion(t *testing.T, c *chatd, id int64) int64 {
	evs := readStream(t, c, id)
	return evs[len(evs)-1].Version
}

func TestResumeAndCancelEndToEnd(t *testing.T) {
	c := startChatd(t, pgtest.NewDatabase(t), map[string]string{"PARLEY_OFFLINE_TOKEN_DELAY": "40ms"})
	tok := token(t, "42", time.Hour)
	id := c.createRoom(t, tok)
	a := connect(t, c.wsURL(id, "token="+tok))
	readFrame(t, a)
	send(t, a, map[string]any{"message": "What does the jeonse loan cover?"})
	first := []frameMap{readFrame(t, a), readFrame(t, a)} // the question, chunk 0
	if first[1]["type"] != "chunk" {
		t.Fatalf("second frame %v, want a chunk", first[1])
	}
	// A question while the answer streams is refused with busy.
	send(t, a, map[string]any{"message": "And another?"})
	// Resume from chunk 0 mid-answer, and connect with history mid-answer.
	r := connect(t, c.wsURL(id, "token="+tok+"&after="+strconv.FormatInt(version(first[1]), 10)))
	m := connect(t, c.wsURL(id, "token="+tok))
	hist := readFrame(t, m)
	rest := readAnswer(t, a)
	var busy bool
	if rest[0]["type"] == "error" {
		busy = rest[0]["code"] == "busy"
		rest = rest[1:]
	} else {
		for i, f := range rest {
			if f["type"] == "error" {
				busy = f["code"] == "busy"
				rest = append(rest[:i:i], rest[i+1:]...)
				break
			}
		}
	}
	if !busy {
		t.Errorf("a question while streaming was not refused with busy")
	}
	resumed := readAnswer(t, r)
	if mustJSON(resumed) != mustJSON(rest) {
		t.Errorf("resume after %d:\n got %s\nwant %s", version(first[1]), mustJSON(resumed), mustJSON(rest))
	}
	// The mid-answer history holds the partial answer; the live frames
	// continue right after its version.
	msgs := hist["messages"].([]any)
	ans := msgs[len(msgs)-1].(map[string]any)
	live := readAnswer(t, m)
	if ans["status"] != "streaming" {
		t.Fatalf("history taken mid-answer shows the answer as %v, want streaming", ans["status"])
	}
	text := ans["message"].(string)
	for _, f := range live[:len(live)-1] {
		text += f["message"].(string)
	}
	if text != rest[len(rest)-1]["message"] {
		t.Errorf("partial history %q + live chunks = %q, want %q", ans["message"], text, rest[len(rest)-1]["message"])
	}
	if version(live[0]) != version(hist)+1 {
		t.Errorf("first live frame at version %d after history at %d: gap or duplicate", version(live[0]), version(hist))
	}

	// Cancel: the next answer stops with answer_cancelled.
	send(t, a, map[string]any{"message": "How do I apply for the youth savings account?"})
	readFrame(t, a) // the question
	readFrame(t, a) // a chunk
	send(t, a, map[string]any{"type": "cancel"})
	fs := readAnswer(t, a)
	if end := fs[len(fs)-1]; end["type"] != "answer_cancelled" || end["reason"] != "cancelled" {
		t.Errorf("after cancel: %v", end)
	}
	evs := readStream(t, c, id)
	if typ := evs[len(evs)-1].Type; typ != room.TypeAnswerCancelled {
		t.Errorf("last event %s, want %s", typ, room.TypeAnswerCancelled)
	}
}

func TestTwoServersOneDatabase(t *testing.T) {
	db := pgtest.NewDatabase(t)
	a := startChatd(t, db, map[string]string{"PARLEY_INSTANCE": "a"})
	b := startChatd(t, db, map[string]string{"PARLEY_INSTANCE": "b"})
	tok := token(t, "42", time.Hour)
	id := a.createRoom(t, tok)
	wa := connect(t, a.wsURL(id, "token="+tok))
	wb := connect(t, b.wsURL(id, "token="+tok))
	readFrame(t, wa)
	readFrame(t, wb)
	send(t, wb, map[string]any{"message": "Who can get the job seeker allowance?"})
	fa, fb := readAnswer(t, wa), readAnswer(t, wb)
	if mustJSON(fa) != mustJSON(fb) {
		t.Errorf("two servers saw different frames:\n%s\n%s", mustJSON(fa), mustJSON(fb))
	}
	if fa[len(fa)-1]["type"] != "answer" {
		t.Errorf("last frame %v", fa[len(fa)-1])
	}
}

func TestShutdownMidAnswer(t *testing.T) {
	db := pgtest.NewDatabase(t)
	c := startChatd(t, db, map[string]string{"PARLEY_OFFLINE_TOKEN_DELAY": "300ms", "PARLEY_SHUTDOWN_GRACE": "100ms"})
	tok := token(t, "42", time.Hour)
	id := c.createRoom(t, tok)
	ws := connect(t, c.wsURL(id, "token="+tok))
	readFrame(t, ws)
	send(t, ws, map[string]any{"message": "Tell me everything about public rental housing for young people"})
	readFrame(t, ws) // the question
	readFrame(t, ws) // chunk 0
	stopped := make(chan error, 1)
	go func() { stopped <- c.stop() }()
	var last frameMap
	_ = ws.SetReadDeadline(time.Now().Add(15 * time.Second))
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
				t.Fatalf("socket ended with %v, want close 1001", err)
			}
			break
		}
		_ = json.Unmarshal(data, &last)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("chatd stopped with: %v", err)
	}
	if last["type"] != "answer_failed" || last["reason"] != "shutdown" {
		t.Errorf("last frame before 1001: %v, want answer_failed with reason shutdown", last)
	}
	evs := readStream(t, c, id)
	if typ := evs[len(evs)-1].Type; typ != room.TypeAnswerFailed {
		t.Errorf("last event %s, want %s: shutdown must write the terminal event", typ, room.TypeAnswerFailed)
	}
}

// TestAPIRequestLimitEndToEnd: over PARLEY_API_REQUESTS_PER_MINUTE a
// user's request is refused with 429 and writes nothing, while another
// user's still go through.
func TestAPIRequestLimitEndToEnd(t *testing.T) {
	c := startChatd(t, pgtest.NewDatabase(t), map[string]string{"PARLEY_API_REQUESTS_PER_MINUTE": "8"}) // bursts of 2
	alice, bob := token(t, "42", time.Hour), token(t, "43", time.Hour)
	c.createRoom(t, alice)
	c.createRoom(t, alice)
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	if code := c.api(t, "POST", "/api/rooms", alice, `{"title":"one too many"}`, &e); code != http.StatusTooManyRequests || e.Error.Code != "rate_limited" {
		t.Fatalf("third create in a burst of 2: %d %q, want 429 rate_limited", code, e.Error.Code)
	}
	if code := c.api(t, "GET", "/api/rooms", bob, "", nil); code != http.StatusOK {
		t.Errorf("bob's list: %d, want 200: budgets are per user", code)
	}
	pool, err := pgxpool.New(t.Context(), c.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var n int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM events WHERE type = $1`, room.TypeRoomCreated).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("%d rooms in the log, want 2: the refused create must write nothing", n)
	}
}

func TestAuditEndToEnd(t *testing.T) {
	c := startChatd(t, pgtest.NewDatabase(t), nil)
	owner := token(t, "42", time.Hour)
	id := c.createRoom(t, owner)
	auditor, err := jwtauth.Mint([]byte(testSecret), "900", time.Hour, time.Now(), map[string]any{"roles": []string{"auditor"}})
	if err != nil {
		t.Fatal(err)
	}
	auditURL := "ws" + strings.TrimPrefix(c.base, "http") + "/ws/audit/" + strconv.FormatInt(id, 10) + "/?token="
	expectClose(t, connect(t, auditURL+token(t, "43", time.Hour)), wsapi.CloseForbidden)

	ws := connect(t, auditURL+auditor)
	if h := readFrame(t, ws); h["type"] != "history" {
		t.Fatalf("audit first frame %v", h)
	}
	send(t, ws, map[string]any{"message": "let me in"})
	if f := readFrame(t, ws); f["type"] != "error" || f["code"] != "forbidden" {
		t.Fatalf("auditor posting: %v, want a forbidden error", f)
	}
	var found bool
	for _, ev := range readStream(t, c, id) {
		if ev.Type == room.TypeMessagePosted {
			t.Errorf("the auditor's message was stored")
		}
		if ev.Type == room.TypeAuditAccessed && strings.Contains(string(ev.Data), `"900"`) {
			found = true
		}
	}
	if !found {
		t.Error("no AuditAccessed event for the auditor's read")
	}
}

// TestGroundedAnswerEndToEnd: a document in the embedded index grounds the
// answer, which cites it; and the retrieval is recorded in the room's
// stream before the first chunk.
func TestGroundedAnswerEndToEnd(t *testing.T) {
	db := pgtest.NewDatabase(t)
	ingestDoc(t, db, "housing/youth-rent.md", "# Youth monthly rent support\n\nYoung people living alone can receive up to 200,000 won a month for twelve months as youth monthly rent support. Apply online at the welfare portal.")
	c := startChatd(t, db, nil)
	tok := token(t, "42", time.Hour)
	id := c.createRoom(t, tok)
	ws := connect(t, c.wsURL(id, "token="+tok))
	readFrame(t, ws)
	send(t, ws, map[string]any{"message": "How much youth monthly rent support can young people receive?"})
	fs := readAnswer(t, ws)
	last := fs[len(fs)-1]
	if last["type"] != "answer" || !strings.Contains(last["message"].(string), "200,000 won") {
		t.Fatalf("answer %v, want it grounded in the document", last)
	}
	srcs, _ := last["sources"].([]any)
	if len(srcs) == 0 || !strings.Contains(mustJSON(srcs[0]), "housing/youth-rent.md") {
		t.Fatalf("sources %v, want the document", last["sources"])
	}
	var retrieval, firstChunk int64 = -1, -1
	for _, ev := range readStream(t, c, id) {
		switch {
		case ev.Type == room.TypeRetrievalRecorded && retrieval < 0:
			retrieval = ev.Version
		case ev.Type == room.TypeAnswerChunk && firstChunk < 0:
			firstChunk = ev.Version
		}
	}
	if retrieval < 0 || retrieval > firstChunk {
		t.Errorf("RetrievalRecorded at version %d, first chunk at %d: want the retrieval recorded first", retrieval, firstChunk)
	}
}

// ingestDoc puts one document in the embedded index of db, as chatctl
// ingest does with the default settings.
func ingestDoc(t *testing.T, db, source, text string) {
	t.Helper()
	doc, err := document.Parse(document.Markdown, source, []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	ingestDocs(t, db, []rag.Document{doc})
}

// ingestDocs brings the embedded index of db in step with docs through
// the components and settings chatctl ingest uses by default.
func ingestDocs(t *testing.T, db string, docs []rag.Document) {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	rc, err := ragenv.FromEnv(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	emb, err := rc.OpenEmbedder(ctx)
	if err != nil {
		t.Fatal(err)
	}
	idx, closeIdx, err := rc.OpenIndex(ctx, emb, pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeIdx()
	counter, err := tokens.New("")
	if err != nil {
		t.Fatal(err)
	}
	splitter, err := document.NewSplitter(counter, document.SplitterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	in := &rag.Ingester{Index: idx, Embedder: emb, Splitter: splitter}
	if _, err := in.Sync(ctx, docs, rag.SyncOptions{}); err != nil {
		t.Fatal(err)
	}
}

// ingestSample ingests the sample corpus into db as `make run` does:
// each topic folder under its name.
func ingestSample(t *testing.T, db string) {
	t.Helper()
	s := ragtest.LoadSample(t)
	docs, err := document.LoadAll(s.Dir, s.Sources())
	if err != nil {
		t.Fatal(err)
	}
	ingestDocs(t, db, docs)
}

// TestSampleCorpusEndToEnd asks chatd on its defaults (no model), over
// WebSocket, what a new user asks first about the sample corpus, and a
// question the corpus has nothing on.
func TestSampleCorpusEndToEnd(t *testing.T) {
	db := pgtest.NewDatabase(t)
	ingestSample(t, db)
	c := startChatd(t, db, nil)
	tok := token(t, "42", time.Hour)
	id := c.createRoom(t, tok)
	ws := connect(t, c.wsURL(id, "token="+tok))
	readFrame(t, ws)

	send(t, ws, map[string]any{"message": "청년 월세 지원은 누가 받을 수 있나요?"})
	fs := readAnswer(t, ws)
	last := fs[len(fs)-1]
	srcs, _ := last["sources"].([]any)
	if len(srcs) == 0 || !strings.Contains(mustJSON(srcs[0]), `"document":"housing/youth-rent-support.ko.md"`) {
		t.Fatalf("sources %s; want housing/youth-rent-support.ko.md first", mustJSON(srcs))
	}
	msg, _ := last["message"].(string)
	// It quotes the document's content sentences, never a heading (the
	// job-seeker document's "## 누가 받을 수 있나요" was quoted once).
	if !strings.Contains(msg, "청년 월세 특별지원은") && !strings.Contains(msg, "월세") || strings.Contains(msg, "누가 받을 수 있나요") || strings.Contains(msg, "##") {
		t.Errorf("answer %q; want sentences of the rent document quoted, and no heading", msg)
	}
	if !strings.Contains(msg, "[1] 청년 월세 특별지원") {
		t.Errorf("answer %q does not cite the rent support document first", msg)
	}

	send(t, ws, map[string]any{"message": "내일 서울 날씨 어때요?"})
	fs = readAnswer(t, ws)
	last = fs[len(fs)-1]
	if srcs, _ := last["sources"].([]any); len(srcs) != 0 {
		t.Errorf("an off-topic question cited %s", mustJSON(srcs))
	}
	if msg, _ := last["message"].(string); !strings.Contains(msg, "관련된 문서를 찾지 못했습니다") {
		t.Errorf("answer to an off-topic question %q; want it to say, in Korean, that nothing relevant was found", msg)
	}
	// The record says how the rent question's passages were found.
	for _, ev := range readStream(t, c, id) {
		if ev.Type != room.TypeRetrievalRecorded {
			continue
		}
		p, err := room.Decode(ev, false)
		if err != nil {
			t.Fatal(err)
		}
		rec := p.(room.RetrievalRecorded)
		if len(rec.Retrievers) != 1 || rec.Retrievers[0].Kind != "sparse" || len(rec.Fused) == 0 && len(rec.Hits) > 0 {
			t.Errorf("RetrievalRecorded %+v: want the sparse list and the fused order", rec)
		}
		break
	}
}
