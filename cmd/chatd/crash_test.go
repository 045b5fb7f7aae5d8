package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parleychat/parley/adapters/postgres/pgtest"
	"github.com/parleychat/parley/domain/room"
)

// TestCrashRecovery kills a real chatd process with SIGKILL in the middle
// of an answer and checks that the next start fails the answer left open
// with reason "interrupted", so no answer stays streaming forever.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: builds and kills a chatd binary")
	}
	bin := filepath.Join(t.TempDir(), "chatd")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("go build chatd: %v", err)
	}
	db := pgtest.NewDatabase(t)
	env := append(os.Environ(), "PARLEY_DATABASE_URL="+db, "PARLEY_HTTP_ADDR=127.0.0.1:0", "PARLEY_JWT_SECRET="+testSecret,
		"PARLEY_INSTANCE=crashy", "PARLEY_OFFLINE_TOKEN_DELAY=500ms")

	start := func() (*exec.Cmd, string) {
		t.Helper()
		cmd := exec.Command(bin)
		cmd.Env = env
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		addr := make(chan string, 1)
		go func() { // ends when the process's stdout closes
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				var line struct{ Msg, Addr string }
				if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "chatd listening" {
					addr <- line.Addr
				}
			}
		}()
		select {
		case a := <-addr:
			return cmd, "http://" + a
		case <-time.After(60 * time.Second):
			t.Fatal("chatd did not start")
		}
		return nil, ""
	}

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
