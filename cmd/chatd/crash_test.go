package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parleychat/parley/adapters/postgres/pgtest"
	"github.com/parleychat/parley/adapters/redis/redistest"
	"github.com/parleychat/parley/domain/room"
)

// TestCrashRecovery kills a real chatd process with SIGKILL in the middle
// of an answer and checks that the next start fails the answer left open
// with reason "interrupted", so no answer stays streaming forever.
func TestCrashRecovery(t *testing.T) {
	bin := buildChatd(t)
	db := pgtest.NewDatabase(t)
	// The memory's keys under a prefix of this test's own: a checkpoint
	// belongs to one database's log, and another test's chatd must not
	// find this one's under the default prefix (nor this one another's).
	env := append(os.Environ(), "PARLEY_DATABASE_URL="+db, "PARLEY_HTTP_ADDR=127.0.0.1:0", "PARLEY_JWT_SECRET="+testSecret,
		"PARLEY_INSTANCE=crashy", "PARLEY_OFFLINE_TOKEN_DELAY=500ms",
		"PARLEY_REDIS_URL="+redistest.URL(), "PARLEY_REDIS_PREFIX="+redistest.Prefix(t, redistest.Client(t)))
	start := func() (*exec.Cmd, string) { return startProcess(t, bin, env) }

	cmd, base := start()
	c := &chatd{base: base, dbURL: db}
	tok := token(t, "42", time.Hour)
	id := c.createRoom(t, tok)
	ws := connect(t, c.wsURL(id, "token="+tok))
	readFrame(t, ws)
	send(t, ws, map[string]any{"message": "What is the youth hope savings account?"})
	readFrame(t, ws) // the question
	readFrame(t, ws) // chunk 0
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if evs := readStream(t, c, id); evs[len(evs)-1].Type != room.TypeAnswerChunk {
		t.Fatalf("after the kill the last event is %s, want an open answer", evs[len(evs)-1].Type)
	}

	_, base = start()
	c.base = base
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		evs := readStream(t, c, id)
		last := evs[len(evs)-1]
		if last.Type == room.TypeAnswerFailed {
			if !strings.Contains(string(last.Data), `"interrupted"`) {
				t.Errorf("AnswerFailed %s, want reason interrupted", last.Data)
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the restarted chatd did not fail the interrupted answer; last event %s", last.Type)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The room works again: the next question is answered.
	ws = connect(t, c.wsURL(id, "token="+tok))
	if h := readFrame(t, ws); h["type"] != "history" {
		t.Fatalf("after restart: %v", h)
	}
	send(t, ws, map[string]any{"message": "Are you back?"})
	if fs := readAnswer(t, ws); fs[len(fs)-1]["type"] != "answer" {
		t.Errorf("after restart the question ended with %v, want an answer", fs[len(fs)-1])
	}
}
