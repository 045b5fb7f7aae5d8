package main

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/adapters/postgres/pgtest"
	"github.com/parleychat/parley/adapters/wsapi"
	"github.com/parleychat/parley/cmd/internal/stack"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/domaintest"
	"github.com/parleychat/parley/domain/room"
)

// TestRetentionEndToEnd runs the retention job as chatd wires it
// (PARLEY_RETENTION and PARLEY_RETENTION_INTERVAL parsed as chatd parses
// them, the job in cmd/internal/stack under its advisory lock): a room
// whose last message is older than the retention is erased — its key
// destroyed, RoomErased with reason retention in its log, its open socket
// closed, REST answering 404 for it — while a room active since keeps its
// conversation. Instead of waiting an hour, the test moves the chat
// service's clock (stack.Config.Now) to the moment the first room has
// been idle for longer than the retention and the second not.
func TestRetentionEndToEnd(t *testing.T) {
	var frozen atomic.Pointer[time.Time]
	c := startChatdWith(t, pgtest.NewDatabase(t), map[string]string{
		"PARLEY_RETENTION": "1h", "PARLEY_RETENTION_INTERVAL": "1s", "PARLEY_CHATLOG_INTERVAL": "10ms",
	}, func(cfg *stack.Config) {
		cfg.Now = func() time.Time {
			if at := frozen.Load(); at != nil {
				return *at
			}
			return time.Now()
		}
	})
	tok := token(t, "42", time.Hour)
	converse := func(q string) (int64, string) {
		t.Helper()
		id := c.createRoom(t, tok)
		ws := connect(t, c.wsURL(id, "token="+tok))
		readFrame(t, ws) // the history
		send(t, ws, map[string]any{"type": "message", "message": q})
		fs := readAnswer(t, ws)
		if last := fs[len(fs)-1]; last["type"] != "answer" {
			t.Fatalf("room %d: the answer ended %v", id, last)
		}
		ws.Close()
		return id, fs[len(fs)-1]["message"].(string)
	}
	old, oldAnswer := converse("What housing support is there for students?")
	recent, recentAnswer := converse("Is there job training for young people?")
	messages := func(id int64) (int, []map[string]any) {
		t.Helper()
		var page struct {
			Messages []map[string]any `json:"messages"`
		}
		code := c.api(t, "GET", fmt.Sprintf("/api/rooms/%d/messages", id), tok, "", &page)
		return code, page.Messages
	}
	domaintest.WaitUntil(t, "the ChatLog to hold both conversations", 30*time.Second, func() bool {
		_, a := messages(old)
		_, b := messages(recent)
		return len(a) == 2 && a[0]["status"] == room.StatusComplete && len(b) == 2 && b[0]["status"] == room.StatusComplete
	})

	// The moment between the two rooms' last activity (as the ChatLog
	// records it, from the log), plus the retention: the old room has
	// been idle longer than an hour, the recent one not.
	pool, err := pgxpool.New(t.Context(), c.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	lastActive := func(id int64) time.Time {
		t.Helper()
		var at time.Time
		if err := pool.QueryRow(t.Context(), `SELECT max(updated_at) FROM chat_logs WHERE room_id = $1`, id).Scan(&at); err != nil {
			t.Fatal(err)
		}
		return at
	}
	oldAt, recentAt := lastActive(old), lastActive(recent)
	if !oldAt.Before(recentAt) {
		t.Fatalf("room %d was last active at %s, not before room %d (%s)", old, oldAt, recent, recentAt)
	}
	watch := connect(t, c.wsURL(old, "token="+tok)) // the owner reading the old room when it goes
	readFrame(t, watch)
	now := oldAt.Add(recentAt.Sub(oldAt) / 2).Add(time.Hour)
	frozen.Store(&now)

	// The job's next run erases the old room, and only it.
	domaintest.WaitUntil(t, "the retention job to erase the idle room", 30*time.Second, func() bool {
		return strings.Contains(c.logBuf.String(), `"msg":"retention: erased idle rooms"`)
	})
	if logs := c.logBuf.String(); !strings.Contains(logs, `"msg":"retention: erased idle rooms","rooms":1,`) {
		t.Errorf("chatd's log does not say the retention job erased one room:\n%s", grepLines(logs, "retention"))
	}
	if evs := readStream(t, c, old); len(evs) == 0 || evs[len(evs)-1].Type != room.TypeRoomErased {
		t.Fatalf("room %d's log does not end with RoomErased: %v", old, eventTypes(evs))
	} else if e, err := room.Decode(evs[len(evs)-1], false); err != nil {
		t.Fatal(err)
	} else if got, want := e, (room.RoomErased{RoomID: old, ErasedBy: "retention", Reason: room.ErasedByRetention}); got != want {
		t.Errorf("room %d erased with %+v, want %+v", old, got, want)
	}
	if evs := readStream(t, c, recent); evs[len(evs)-1].Type == room.TypeRoomErased {
		t.Errorf("room %d, active since, was erased too", recent)
	}
	expectClose(t, watch, wsapi.CloseForbidden)

	// The old room's key is gone (its row a tombstone); the recent one's
	// is not.
	for id, wantErased := range map[int64]bool{old: true, recent: false} {
		var erased bool
		if err := pool.QueryRow(t.Context(), `SELECT wrapped IS NULL FROM room_keys WHERE room_id = $1`, id).Scan(&erased); err != nil {
			t.Fatalf("room %d's key: %v", id, err)
		}
		if erased != wantErased {
			t.Errorf("room %d's key destroyed: %v, want %v", id, erased, wantErased)
		}
	}

	// REST and the socket: the old room reads nothing, its text nowhere;
	// the recent room reads as it did.
	domaintest.WaitUntil(t, "the ChatLog to drop the erased room", 30*time.Second, func() bool {
		code, _ := messages(old)
		return code == http.StatusNotFound
	})
	if code := c.api(t, "GET", fmt.Sprintf("/api/rooms/%d", old), tok, "", nil); code != http.StatusNotFound {
		t.Errorf("GET /api/rooms/%d after retention: %d, want 404", old, code)
	}
	var list struct {
		Rooms []struct {
			ID int64 `json:"id"`
		} `json:"rooms"`
	}
	c.api(t, "GET", "/api/rooms", tok, "", &list)
	if len(list.Rooms) != 1 || list.Rooms[0].ID != recent {
		t.Errorf("GET /api/rooms after retention lists %+v, want room %d alone", list.Rooms, recent)
	}
	if ws, _, err := dialWS(t, c.wsURL(old, "token="+tok), nil); err == nil {
		if _, data, err := ws.ReadMessage(); err == nil && strings.Contains(string(data), oldAnswer) {
			t.Errorf("a socket on the erased room %d shows its conversation: %s", old, data)
		}
	}
	if code, msgs := messages(recent); code != http.StatusOK || len(msgs) != 2 || msgs[0]["message"] != recentAnswer {
		t.Errorf("room %d after retention: %d %v, want its question and answer", recent, code, msgs)
	}
	h := readFrame(t, connect(t, c.wsURL(recent, "token="+tok)))
	if msgs, _ := h["messages"].([]any); len(msgs) != 2 || msgs[1].(map[string]any)["message"] != recentAnswer {
		t.Errorf("room %d's history after retention: %v, want its question and answer", recent, h)
	}
}

func eventTypes(evs []domain.RecordedEvent) []string {
	var ts []string
	for _, ev := range evs {
		ts = append(ts, ev.Type)
	}
	return ts
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for line := range strings.SplitSeq(s, "\n") {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
