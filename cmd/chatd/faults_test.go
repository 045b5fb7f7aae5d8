package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5/pgxpool"
	goredis "github.com/redis/go-redis/v9"

	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/adapters/postgres/pgtest"
	"github.com/parleychat/parley/adapters/redis/redistest"
	"github.com/parleychat/parley/adapters/wsapi"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/domaintest"
	"github.com/parleychat/parley/domain/memory"
	"github.com/parleychat/parley/domain/room"
)

// TestDependencyFaultsEndToEnd runs chatd on a private PostgreSQL and a
// private Redis and does to them what production does: Redis flushed
// mid-answer, Redis down, Redis back empty, PostgreSQL down and back.
// chatd serves through all of it without a restart: /readyz says what is
// degraded or unavailable, REST answers 503 and sockets close with 1013
// while the database is down, live sockets are closed with 1012 when it
// comes back (it may have lost unflushed commits) and resume by hash, and
// every room takes questions again. make chaos does the same to a chatd
// process, with numbers.
func TestDependencyFaultsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: starts private PostgreSQL and Redis servers")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	pg, err := pgtest.StartServer(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Close() })
	rd := redistest.StartServer(t)
	c := startChatd(t, pg.URL, map[string]string{
		"PARLEY_REDIS_URL": rd.URL, "PARLEY_REDIS_PREFIX": "parley:",
		"PARLEY_OFFLINE_TOKEN_DELAY": "40ms", "PARLEY_SWEEP_INTERVAL": "1s", "PARLEY_ANSWER_TIMEOUT": "20s",
	})
	alive := func(step string) {
		t.Helper()
		select {
		case <-c.exited:
			t.Fatalf("%s: chatd exited; it must serve through the fault", step)
		default:
		}
	}
	tok := token(t, "42", time.Hour)
	id := c.createRoom(t, tok)
	ws := connect(t, c.wsURL(id, "token="+tok))
	readFrame(t, ws)
	ask := func(ws *websocket.Conn, q string) []frameMap {
		t.Helper()
		send(t, ws, map[string]any{"message": q})
		if f := readFrame(t, ws); f["type"] != "message" {
			t.Fatalf("%q: %v, want the message frame", q, f)
		}
		return readAnswer(t, ws)
	}

	// Redis flushed while an answer streams: the memory projection
	// rebuilds the room from the log; chatd serves on.
	send(t, ws, map[string]any{"message": "What housing support is there?"})
	readFrame(t, ws)
	readFrame(t, ws) // a chunk: the answer streams
	opts, err := goredis.ParseURL(rd.URL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := goredis.NewClient(opts)
	defer rdb.Close()
	flushTakingRoom(t, c, rd, rdb, id)
	if fs := readAnswer(t, ws); fs[len(fs)-1]["type"] != "answer" {
		t.Fatalf("the answer across the flush ended %v", fs[len(fs)-1])
	}
	ask(ws, "And for students?") // the next batch finds the room's memory gone
	domaintest.WaitUntil(t, "the memory projection to count the rebuilt room", 30*time.Second, func() bool {
		return strings.Contains(c.get(t, "/metrics"), `parley_projection_rooms_rebuilt_total{projection="memory"}`)
	})
	alive("after FLUSHALL")
	if code, body := c.readyz(t); code != 200 || !strings.Contains(body, `"status":"ok"`) {
		t.Errorf("/readyz after the flush: %d %s, want ok", code, body)
	}

	// Redis down: degraded, not down; answers go on.
	rd.Stop()
	if code, body := c.readyz(t); code != 200 || !strings.Contains(body, `"status":"degraded"`) || strings.Contains(body, `"redis":"ok"`) {
		t.Errorf("/readyz with Redis down: %d %s, want 200 degraded with the redis check failing", code, body)
	}
	if fs := ask(ws, "Is there job training?"); fs[len(fs)-1]["type"] != "answer" {
		t.Errorf("with Redis down the answer ended %v", fs[len(fs)-1])
	}
	rd.Start(t) // back, empty
	domaintest.WaitUntil(t, "/readyz ok with Redis back", 30*time.Second, func() bool { code, body := c.readyz(t); return code == 200 && strings.Contains(body, `"status":"ok"`) })
	ask(ws, "Who can apply?")
	alive("after Redis restarted empty")

	// PostgreSQL down while an answer streams: 503, 1013, /readyz 503.
	send(t, ws, map[string]any{"message": "What does the jeonse loan cover?"})
	readFrame(t, ws)
	last := readFrame(t, ws) // a chunk
	if err := pg.Stop(ctx, "immediate"); err != nil {
		t.Fatal(err)
	}
	if code := c.api(t, "GET", fmt.Sprintf("/api/rooms/%d", id), tok, "", nil); code != http.StatusServiceUnavailable {
		t.Errorf("REST with PostgreSQL down: %d, want 503", code)
	}
	expectClose(t, connect(t, c.wsURL(id, "token="+tok)), wsapi.CloseUnavailable)
	if code, _ := c.readyz(t); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz with PostgreSQL down: %d, want 503", code)
	}
	time.Sleep(2 * time.Second)
	if err := pg.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// The live socket is told the log restarted; it resumes by hash.
	for {
		_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, data, err := ws.ReadMessage()
		if err != nil {
			if ce := (*websocket.CloseError)(nil); !asClose(err, &ce) || ce.Code != wsapi.CloseRestart {
				t.Fatalf("the live socket across the restart ended with %v, want close %d", err, wsapi.CloseRestart)
			}
			break
		}
		last = decode(t, data)
	}
	resume := "token=" + tok + "&after=" + strconv.FormatInt(version(last), 10)
	if h, _ := last["hash"].(string); h != "" {
		resume += "&hash=" + h
	}
	ws = connect(t, c.wsURL(id, resume))
	// The answer ends (retried, or failed by the sweeper), then the room
	// takes the next question: nothing stays busy.
	for f := readFrame(t, ws); ; f = readFrame(t, ws) {
		if f["type"] == "history" {
			msgs := f["messages"].([]any)
			if msgs[len(msgs)-1].(map[string]any)["status"] != room.StatusStreaming {
				break
			}
			continue
		}
		if f["is_streaming"] == false {
			break
		}
	}
	if fs := ask(ws, "Are you back?"); fs[len(fs)-1]["type"] != "answer" {
		t.Errorf("after the database came back the answer ended %v", fs[len(fs)-1])
	}
	if code := c.api(t, "GET", fmt.Sprintf("/api/rooms/%d", id), tok, "", nil); code != http.StatusOK {
		t.Errorf("REST after PostgreSQL came back: %d", code)
	}
	alive("after PostgreSQL restarted")
}

// flushTakingRoom flushes Redis at a moment when the flush takes room
// id's memory for good, so that the memory projection must rebuild it
// from the log. The projection must hold the room for the flush to take
// it (one that lags the flush folds the room from its start and has
// nothing to rebuild), and no batch that folds an event of the room may
// be under way: such a batch read the room before the flush and writes
// it back whole after it, with nothing lost and nothing to rebuild. So it
// waits until the memory holds every event of the room it folds (the
// question and the answer's start), flushes, and flushes again, once the
// memory has caught up, when one was appended meanwhile (the answer
// ended).
func flushTakingRoom(t *testing.T, c *chatd, rd *redistest.Server, rdb *goredis.Client, id int64) {
	t.Helper()
	ctx := t.Context()
	lastFolded := func() int64 {
		v := int64(-1)
		for _, ev := range readStream(t, c, id) {
			if memory.Folds(ev.Type) {
				v = ev.Version
			}
		}
		return v
	}
	for try := 1; ; try++ {
		want := lastFolded()
		domaintest.WaitUntil(t, fmt.Sprintf("the memory projection to hold room %d at version %d", id, want), 30*time.Second, func() bool {
			keys, err := rdb.Keys(ctx, "*memory:"+strconv.FormatInt(id, 10)+":42").Result()
			if err != nil || len(keys) == 0 {
				return false
			}
			v, err := rdb.HGet(ctx, keys[0], "applied_version").Int64()
			return err == nil && v >= want
		})
		if err := rd.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if lastFolded() == want {
			return
		}
		if try == 3 {
			t.Fatalf("room %d's stream kept growing across three flushes of Redis", id)
		}
	}
}

func asClose(err error, ce **websocket.CloseError) bool {
	e, ok := err.(*websocket.CloseError)
	*ce = e
	return ok
}

func decode(t *testing.T, data []byte) frameMap {
	t.Helper()
	var f frameMap
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("frame %s: %v", data, err)
	}
	return f
}

// get returns the body of GET path.
func (c *chatd) get(t *testing.T, path string) string {
	t.Helper()
	resp, err := http.Get(c.base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func (c *chatd) readyz(t *testing.T) (int, string) {
	t.Helper()
	resp, err := http.Get(c.base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestUndecodableEventStopsOnlyItsProjections: an event the projections
// cannot decode stops them, not chatd: it serves on, and /readyz says so
// (200, degraded, naming the stopped projections).
func TestUndecodableEventStopsOnlyItsProjections(t *testing.T) {
	c := startChatd(t, pgtest.NewDatabase(t), nil)
	tok := token(t, "42", time.Hour)
	id := c.createRoom(t, tok)
	pool, err := pgxpool.New(t.Context(), c.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	st := postgres.NewStore(pool, postgres.StoreConfig{})
	defer st.Close()
	bad := domain.EventData{ID: domaintest.NewID(t), Type: room.TypeMessagePosted, Data: json.RawMessage(`{"text":5}`)}
	if _, err := st.Append(t.Context(), room.Stream(id), domain.Any(), bad); err != nil {
		t.Fatal(err)
	}
	domaintest.WaitUntil(t, "/readyz to report the stopped projections", 30*time.Second, func() bool {
		code, body := c.readyz(t)
		return code == http.StatusOK && strings.Contains(body, `"status":"degraded"`) && strings.Contains(body, "stopped")
	})
	select {
	case <-c.exited:
		t.Fatal("chatd exited when a projection stopped")
	default:
	}
	if code := c.api(t, "POST", "/api/rooms", tok, `{"title":"Still serving"}`, nil); code != http.StatusCreated {
		t.Errorf("POST /api/rooms with the projections stopped: %d, want 201", code)
	}
}
