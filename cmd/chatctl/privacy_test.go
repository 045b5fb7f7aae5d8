package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"

	"github.com/parleychat/parley/adapters/kurrentdb/kurrentdbtest"
	"github.com/parleychat/parley/adapters/postgres/pgtest"
	"github.com/parleychat/parley/adapters/redis/redistest"
	"github.com/parleychat/parley/cmd/internal/chatdenv"
	"github.com/parleychat/parley/cmd/internal/stack"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/domaintest"
)

// The marker test's strings: the marker is in everything the owner says
// and in the room's title; the owner's id is stored in clear by design
// (the log is routed and audited without keys), so finding it proves the
// searches see what is stored.
const (
	marker      = "MARKER-q7Zx3-debt-income"
	markerOwner = "owner-clear-5c0ffee"
)

// rotatedDataKey is the data key the test rotates to.
const rotatedDataKey = "726f74617465642d646174612d6b65792d2d3031323334353637383961626364"

// chatdUnderTest is chatd run in this process by its own wiring.
type chatdUnderTest struct {
	base string
	stop func()
}

// startStack runs chatd (stack.New, Serve) with vars until stop or the
// test's end; New's error is returned, so a refused start can be tested.
func startStack(t *testing.T, vars map[string]string) (*chatdUnderTest, error) {
	t.Helper()
	cfg, err := chatdenv.Load(env(vars))
	if err != nil {
		t.Fatal(err)
	}
	s, err := stack.New(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan net.Addr, 1), make(chan error, 1)
	go func() { done <- s.Serve(ctx, func(a net.Addr) { ready <- a }) }()
	c := &chatdUnderTest{}
	stopped := false
	c.stop = func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("chatd stopped with %v", err)
			}
		}
	}
	t.Cleanup(c.stop)
	select {
	case a := <-ready:
		c.base = "http://" + a.String()
	case err := <-done:
		t.Fatalf("chatd did not start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("chatd did not start within 30s")
	}
	return c, nil
}

// api makes a REST call and returns its status and body.
func (c *chatdUnderTest) api(t *testing.T, method, path, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, c.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// converse creates a room titled with the marker and asks two questions
// carrying it over the WebSocket, each answered in full.
func (c *chatdUnderTest) converse(t *testing.T, token string) int64 {
	t.Helper()
	code, body := c.api(t, "POST", "/api/rooms", token, `{"title":"Housing `+marker+`"}`)
	if code != http.StatusCreated {
		t.Fatalf("create room: %d %s", code, body)
	}
	var r struct{ ID int64 }
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatal(err)
	}
	ws, _, err := websocket.DefaultDialer.DialContext(t.Context(), fmt.Sprintf("ws%s/ws/chat/%d/?token=%s", strings.TrimPrefix(c.base, "http"), r.ID, token), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	for _, q := range []string{
		"My income is low and my debt is " + marker + ". Which housing support can I get?",
		"Again about " + marker + ": which housing support fits my debt?",
	} {
		if err := ws.WriteJSON(map[string]string{"message": q}); err != nil {
			t.Fatal(err)
		}
		for {
			_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
			var f map[string]any
			if err := ws.ReadJSON(&f); err != nil {
				t.Fatalf("read frame: %v", err)
			}
			if f["type"] == "answer" || f["type"] == "answer_failed" {
				break
			}
		}
	}
	return r.ID
}

// dataDirHolds searches every file of a PostgreSQL data directory (tables,
// indexes, WAL) for s.
func dataDirHolds(t *testing.T, dir, s string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // a temporary file gone meanwhile
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(s)) {
			rel, _ := filepath.Rel(dir, path)
			found = append(found, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func chatctlOut(t *testing.T, vars map[string]string, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(t.Context(), args, env(vars), nil, &out, &errb)
	if err != nil {
		t.Fatalf("chatctl %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.String() + errb.String()
}

// TestConversationTextNeverAtRest is the privacy claim end to end, on
// chatd's own wiring over a private PostgreSQL server (so its data
// directory and WAL can be searched after a CHECKPOINT) and Redis under a
// prefix of its own: a conversation carrying a marker is stored nowhere in
// clear (tables, indexes, WAL; every Redis key's DUMP and values), while
// REST and chatctl show it to those who may read it; KEK rotation keeps it
// readable and a wrong KEK stops chatd at start; after erasure (REST
// DELETE, chatctl erase) no REST answer or chatctl output shows it, the
// audit chain still verifies and reports the rooms erased, and erasing
// again changes nothing. It runs with the log in Postgres and in
// KurrentDB (the in-process fake: its stored events are read raw), through
// the same codec.
func TestConversationTextNeverAtRest(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a private PostgreSQL server")
	}
	t.Run("postgres", func(t *testing.T) { testNeverAtRest(t, nil) })
	t.Run("kurrentdb", func(t *testing.T) {
		_, url := kurrentdbtest.Start(t, 2<<20)
		testNeverAtRest(t, map[string]string{"PARLEY_EVENT_STORE": "kurrentdb", "PARLEY_KURRENTDB_URL": url})
	})
}

// rawLogHolds reads every event of the log as stored, through chatctl's
// raw store (as audit does), and reports which events hold s.
func rawLogHolds(t *testing.T, vars map[string]string, s string) []string {
	t.Helper()
	store, closeStore, err := openEventStore(t.Context(), env(vars), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore()
	var found []string
	n := 0
	for after := (domain.Position{}); ; {
		evs, err := store.ReadAll(t.Context(), domain.ReadAllOptions{After: after, Limit: 500})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			n++
			if bytes.Contains(ev.Data, []byte(s)) || bytes.Contains(ev.Metadata, []byte(s)) {
				found = append(found, fmt.Sprintf("%s %s@%d", ev.Type, ev.Stream, ev.Version))
			}
		}
		if len(evs) < 500 {
			break
		}
		after = evs[len(evs)-1].Position
	}
	if n == 0 {
		t.Fatal("the raw log is empty: the search reads nothing")
	}
	return found
}

func testNeverAtRest(t *testing.T, extra map[string]string) {
	ctx := t.Context()
	pg, err := pgtest.StartServer(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Close() })
	rdb := redistest.Client(t)
	prefix := redistest.Prefix(t, rdb)
	vars := map[string]string{
		"PARLEY_HTTP_ADDR": "127.0.0.1:0", "PARLEY_DATABASE_URL": pg.URL, "PARLEY_JWT_SECRET": testJWTSecret,
		"PARLEY_REDIS_URL": redistest.URL(), "PARLEY_REDIS_PREFIX": prefix, "PARLEY_OPERATOR": "privacy-test",
		"PARLEY_OFFLINE_TOKEN_DELAY": "1ms", "PARLEY_MEMORY_TOKEN_LIMIT": "12", "PARLEY_CHATLOG_INTERVAL": "10ms",
	}
	for k, v := range extra {
		vars[k] = v
	}
	c, _ := startStack(t, vars)
	tok := mint(t, testJWTSecret, markerOwner)
	roomA, roomB := c.converse(t, tok), c.converse(t, tok)
	msgsA := fmt.Sprintf("/api/rooms/%d/messages", roomA)

	// The projections catch up: the ChatLog shows the conversation, the
	// memory holds the rooms (and a summary: the token limit is tiny).
	domaintest.WaitUntil(t, "the ChatLog and the memory to hold both rooms", 30*time.Second, func() bool {
		_, body := c.api(t, "GET", msgsA, tok, "")
		return strings.Contains(body, marker) && redistest.Holds(t, rdb, prefix, fmt.Sprint(roomB))
	})
	domaintest.WaitUntil(t, "a summary of room A (the memory's token limit is tiny)", 30*time.Second, func() bool {
		return strings.Contains(chatctlOut(t, vars, "replay", "--room", fmt.Sprint(roomA), "--format", "jsonl"), "SummaryUpdated")
	})
	if replay := chatctlOut(t, vars, "replay", "--room", fmt.Sprint(roomA)); !strings.Contains(replay, marker) {
		t.Errorf("chatctl replay does not show the conversation to an operator:\n%s", replay)
	}

	// At rest: nowhere in clear.
	checkpoint(t, pg.URL)
	if got := dataDirHolds(t, pg.DataDir(), markerOwner); len(got) == 0 {
		t.Fatal("the search of the data directory does not even find the owner's id, stored in clear: it searches nothing")
	}
	if got := dataDirHolds(t, pg.DataDir(), marker); len(got) > 0 {
		t.Errorf("PostgreSQL's data directory holds the conversation in clear, in %v", got)
	}
	if !redistest.Holds(t, rdb, prefix, markerOwner) {
		t.Error("the search of Redis does not even find the owner's id, stored in clear: it searches nothing")
	}
	if got := rawLogHolds(t, vars, markerOwner); len(got) == 0 {
		t.Error("the raw log does not even hold the owner's id, stored in clear: the search reads nothing")
	}
	if got := rawLogHolds(t, vars, marker); len(got) > 0 {
		t.Errorf("the log stores the conversation in clear, in %v", got)
	}
	if redistest.Holds(t, rdb, prefix, marker) {
		t.Error("Redis holds the conversation in clear")
	}

	// Rotation: a new KEK first; rewrap; then chatd with the new KEK alone
	// reads every room; with a wrong one it does not start.
	c.stop()
	vars["PARLEY_DATA_KEY"] = rotatedDataKey + "," + testDataKey
	if out := chatctlOut(t, vars, "keys", "rotate"); !strings.Contains(out, "rewrapped 2 room keys") {
		t.Errorf("keys rotate said:\n%s", out)
	}
	vars["PARLEY_DATA_KEY"] = testDataKey
	if _, err := startStack(t, vars); err == nil || !strings.Contains(err.Error(), "cannot read the stored room keys") {
		t.Errorf("chatd with the retired data key started, or did not say why not: %v", err)
	}
	vars["PARLEY_DATA_KEY"] = rotatedDataKey
	c, _ = startStack(t, vars)
	if code, body := c.api(t, "GET", msgsA, tok, ""); code != 200 || !strings.Contains(body, marker) {
		t.Errorf("after rotation room %d reads %d %s", roomA, code, body)
	}

	// Erasure: REST for one room, chatctl for the other; both idempotent.
	if code, body := c.api(t, "DELETE", fmt.Sprintf("/api/rooms/%d", roomA), tok, ""); code != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	if code, _ := c.api(t, "DELETE", fmt.Sprintf("/api/rooms/%d", roomA), tok, ""); code != http.StatusNotFound {
		t.Errorf("DELETE again: %d, want 404", code)
	}
	for i, want := range []string{"erased: its key is destroyed", "erased already"} {
		if out := chatctlOut(t, vars, "erase", "--room", fmt.Sprint(roomB), "--reason", "test request"); !strings.Contains(out, want) {
			t.Errorf("chatctl erase #%d said %q, want %q", i+1, out, want)
		}
	}
	if code, body := c.api(t, "POST", "/api/me/erase", tok, ""); code != 200 || !strings.Contains(body, `"erased":[]`) {
		t.Errorf("POST /api/me/erase after both rooms were erased: %d %s, want nothing more erased", code, body)
	}

	// Afterwards: no output shows the text; the audit chain verifies and
	// says the rooms were erased; the rooms' ids read nothing.
	domaintest.WaitUntil(t, "the ChatLog to drop the erased rooms", 30*time.Second, func() bool {
		_, body := c.api(t, "GET", "/api/rooms", tok, "")
		return !strings.Contains(body, fmt.Sprint(roomA)) && !strings.Contains(body, fmt.Sprint(roomB))
	})
	outputs := map[string]string{}
	for _, room := range []int64{roomA, roomB} {
		id := fmt.Sprint(room)
		outputs["replay "+id] = chatctlOut(t, vars, "replay", "--room", id)
		outputs["replay jsonl "+id] = chatctlOut(t, vars, "replay", "--room", id, "--format", "jsonl")
		outputs["export "+id] = chatctlOut(t, vars, "export", "--room", id)
		outputs["audit verify "+id] = chatctlOut(t, vars, "audit", "verify", "--room", id)
		for _, path := range []string{"/api/rooms/" + id, "/api/rooms/" + id + "/messages"} {
			code, body := c.api(t, "GET", path, tok, "")
			if code != http.StatusNotFound {
				t.Errorf("GET %s after erasure: %d, want 404", path, code)
			}
			outputs["GET "+path] = body
		}
	}
	outputs["export --user"] = chatctlOut(t, vars, "export", "--user", markerOwner)
	_, outputs["GET /api/rooms"] = c.api(t, "GET", "/api/rooms", tok, "")
	for what, out := range outputs {
		if strings.Contains(out, marker) {
			t.Errorf("after erasure %s shows the conversation:\n%s", what, out)
		}
	}
	for _, room := range []int64{roomA, roomB} {
		if out := outputs[fmt.Sprint("audit verify ", room)]; !strings.Contains(out, "intact") || !strings.Contains(out, "erased") {
			t.Errorf("audit verify of erased room %d: %s; want intact and erased", room, out)
		}
		if out := outputs[fmt.Sprint("replay ", room)]; !strings.Contains(out, "room erased by") {
			t.Errorf("replay of erased room %d does not say it was erased:\n%s", room, out)
		}
	}
	if redistest.Holds(t, rdb, prefix, marker) {
		t.Error("Redis holds the conversation in clear after erasure")
	}
	checkpoint(t, pg.URL)
	if got := dataDirHolds(t, pg.DataDir(), marker); len(got) > 0 {
		t.Errorf("after erasure PostgreSQL's data directory holds the conversation in clear, in %v", got)
	}
}

// checkpoint makes PostgreSQL write every dirty page to its data files.
func checkpoint(t *testing.T, url string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), "CHECKPOINT"); err != nil {
		t.Fatal(err)
	}
}
