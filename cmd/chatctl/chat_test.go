package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/adapters/httpapi"
	"github.com/parleychat/parley/adapters/inmem"
	"github.com/parleychat/parley/adapters/jwtauth"
	"github.com/parleychat/parley/adapters/offline"
	"github.com/parleychat/parley/adapters/wsapi"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/chat"
	"github.com/parleychat/parley/domain/domaintest"
	"github.com/parleychat/parley/domain/room"
)

const testAnswer = "Up to 200,000 won a month."

// chatEnv is a real Parley server on loopback: the WebSocket gateway and
// the REST API over an in-memory store, with a real JWT verifier for
// testJWTSecret.
type chatEnv struct {
	url string
	svc *chat.Service
	gw  *wsapi.Gateway
}

// unusedAPI answers the REST routes chatctl chat never calls.
type unusedAPI struct{}

var errUnused = errors.New("not used by chatctl chat")

func (unusedAPI) RoomsOf(context.Context, string, int) ([]httpapi.RoomSummary, error) {
	return nil, errUnused
}
func (unusedAPI) Messages(context.Context, int64, int64, int) ([]room.Message, error) {
	return nil, errUnused
}
func (unusedAPI) Issue(context.Context, domain.Principal, int64) (string, time.Time, error) {
	return "", time.Time{}, errUnused
}

func newChatEnv(t *testing.T, gen chat.Generator, cfg wsapi.Config) *chatEnv {
	t.Helper()
	store := inmem.New(nil)
	svc := chat.NewService(chat.Config{ShutdownGrace: 10 * time.Millisecond},
		chat.Deps{Store: store, Generator: gen, Now: time.Now, Random: rand.Reader})
	hub := wsapi.NewHub(store, nil)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { hub.Run(ctx) })
	wg.Go(func() { svc.Run(ctx) })
	<-hub.Ready()
	verifier, err := jwtauth.New(ctx, jwtauth.Config{Secret: []byte(testJWTSecret)})
	if err != nil {
		t.Fatal(err)
	}
	gw := wsapi.New(cfg, wsapi.Deps{Hub: hub, Auth: verifier, Rooms: svc,
		History: wsapi.ProjectedHistory{Stream: store}, Stream: store})
	api := httpapi.NewServer(httpapi.Config{}, httpapi.Deps{Verifier: verifier, Rooms: svc,
		RoomLister: unusedAPI{}, Messages: unusedAPI{}, Tickets: unusedAPI{}, ChatWS: gw.Chat()})
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		gw.Shutdown(sctx)
		srv.Close()
		cancel()
		wg.Wait()
	})
	return &chatEnv{url: srv.URL, svc: svc, gw: gw}
}

func scripted(t *testing.T, cfg offline.ScriptedConfig) *offline.Scripted {
	t.Helper()
	g, err := offline.NewScripted(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// room creates a room of owner, asks it each question in turn, waits for
// every answer, and returns the room's id and version.
func (e *chatEnv) room(t *testing.T, owner string, questions ...string) (int64, int64) {
	t.Helper()
	r, err := e.svc.CreateRoom(t.Context(), owner, "Housing")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range questions {
		if _, err := e.svc.Post(t.Context(), r.ID, owner, q, ""); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for r, err = e.svc.Room(t.Context(), r.ID, owner); err == nil && r.Streaming; r, err = e.svc.Room(t.Context(), r.ID, owner) {
			if time.Now().After(deadline) {
				t.Fatalf("answer to %q still streaming after 5s", q)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return r.ID, r.Version
}

func mint(t *testing.T, secret, user string) string {
	t.Helper()
	tok, err := jwtauth.Mint([]byte(secret), user, time.Hour, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// waitFor waits until b holds want.
func waitFor(t *testing.T, b *domaintest.SyncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(b.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("output never showed %q; it is:\n%s", want, b.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// chatRun is a runChat in progress, its stdin a pipe the test writes.
type chatRun struct {
	stdin          *io.PipeWriter
	stdout, stderr *domaintest.SyncBuffer
	done           chan error
}

func startChat(t *testing.T, args []string, vars map[string]string, stdin io.Reader) *chatRun {
	t.Helper()
	pr, pw := io.Pipe()
	if stdin == nil {
		stdin = pr
	}
	r := &chatRun{stdin: pw, stdout: &domaintest.SyncBuffer{}, stderr: &domaintest.SyncBuffer{}, done: make(chan error, 1)}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	go func() { r.done <- runChat(ctx, args, env(vars), stdin, r.stdout, r.stderr) }()
	t.Cleanup(func() {
		pw.Close()
		cancel()
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			t.Error("runChat did not return 10s after its context ended")
		}
	})
	return r
}

// wait returns runChat's error, failing the test after 15s.
func (r *chatRun) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		return err
	case <-time.After(15 * time.Second):
		t.Fatalf("runChat still running after 15s\nstdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
		return nil
	}
}

func TestChat(t *testing.T) {
	e := newChatEnv(t, scripted(t, offline.ScriptedConfig{Text: testAnswer, Rate: 200}), wsapi.Config{})
	good := mint(t, testJWTSecret, "42")
	for _, tc := range []struct {
		name  string
		args  []string // --server and --room are added; "AFTER" is replaced by the room's version
		env   map[string]string
		stdin string
		// hold keeps stdin open: the session must end by itself.
		hold       bool
		wantStdout string
		wantStderr []string
		wantErr    []string // substrings of the error; nil: success
		wantExit   int
	}{
		{
			name:  "history, then questions streamed one by one to the end of input",
			args:  []string{"--token", good},
			stdin: "How much is it?\nAnd for students?\n",
			wantStdout: "you: Who can apply?\nbot: " + testAnswer + "\nyou: How much is it?\nbot: " + testAnswer +
				"\nyou: And for students?\nbot: " + testAnswer + "\n",
			wantStderr: []string{"joined room"},
		},
		{
			name:       "resume with --after prints no history",
			args:       []string{"--token", good, "--after", "AFTER"},
			stdin:      "How much is it?\n",
			wantStdout: "you: How much is it?\nbot: " + testAnswer + "\n",
		},
		{
			name:       "resume from a position the server does not hold gets the room, with a notice",
			args:       []string{"--token", good, "--after", "9999", "--hash", strings.Repeat("0", 64)},
			wantStdout: "you: Who can apply?\nbot: " + testAnswer + "\n",
			wantStderr: []string{"no longer holds version 9999", "here is the room as it is"},
		},
		{
			name:       "token from PARLEY_TOKEN, history only",
			env:        map[string]string{"PARLEY_TOKEN": good},
			wantStdout: "you: Who can apply?\nbot: " + testAnswer + "\n",
		},
		{
			name:       "token minted for --user with PARLEY_JWT_SECRET",
			args:       []string{"--user", "42"},
			env:        map[string]string{"PARLEY_JWT_SECRET": testJWTSecret, "PARLEY_TOKEN": "ignored: --user wins"},
			wantStdout: "you: Who can apply?\nbot: " + testAnswer + "\n",
		},
		{
			name:       "blank lines are skipped, /quit leaves at once",
			args:       []string{"--token", good},
			stdin:      "\n   \r\n/quit\nnever sent\n",
			wantStdout: "you: Who can apply?\nbot: " + testAnswer + "\n",
		},
		{
			name:       "a message over 8 KiB is refused locally",
			args:       []string{"--token", good},
			stdin:      strings.Repeat("x", 8193) + "\n",
			wantStdout: "you: Who can apply?\nbot: " + testAnswer + "\n",
			wantStderr: []string{"not sent: the message is 8193 bytes"},
		},
		{
			name:     "a bad token is refused with 4401",
			args:     []string{"--token", "not-a-jwt"},
			hold:     true,
			wantErr:  []string{"refused the token (close 4401", "get a new one", "--room"},
			wantExit: exitUnauthorized,
		},
		{
			name:     "a token minted with another secret is refused with 4401",
			args:     []string{"--user", "42"},
			env:      map[string]string{"PARLEY_JWT_SECRET": "another-secret-0123456789-0123456789"},
			hold:     true,
			wantErr:  []string{"close 4401", "PARLEY_JWT_SECRET is not the one"},
			wantExit: exitUnauthorized,
		},
		{
			name:     "another user's room is refused with 4403",
			args:     []string{"--token", mint(t, testJWTSecret, "43")},
			hold:     true,
			wantErr:  []string{"does not exist, was deleted, or is not the token user's (close 4403"},
			wantExit: exitForbidden,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, version := e.room(t, "42", "Who can apply?")
			args := []string{"--server", e.url, "--room", strconv.FormatInt(id, 10)}
			for _, a := range tc.args {
				args = append(args, strings.ReplaceAll(a, "AFTER", strconv.FormatInt(version, 10)))
			}
			var stdin io.Reader = strings.NewReader(tc.stdin)
			if tc.hold {
				stdin = nil
			}
			r := startChat(t, args, tc.env, stdin)
			err := r.wait(t)
			stdout, stderr := r.stdout.String(), r.stderr.String()
			if tc.wantErr == nil && err != nil {
				t.Fatalf("runChat: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
			}
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("runChat succeeded; want an error with %q\nstdout:\n%s", tc.wantErr, stdout)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not say %q", err, w)
					}
				}
				if got := exitCode(err); got != tc.wantExit {
					t.Errorf("exit status %d, want %d", got, tc.wantExit)
				}
				if strings.Contains(stderr, "joined room") {
					t.Errorf("stderr %q says the room was joined, though the server refused", stderr)
				}
			}
			if stdout != tc.wantStdout {
				t.Errorf("stdout:\n got %q\nwant %q", stdout, tc.wantStdout)
			}
			for _, w := range tc.wantStderr {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q does not say %q", stderr, w)
				}
			}
			for _, secret := range []string{good, testJWTSecret, "not-a-jwt"} {
				if strings.Contains(stdout+stderr+errString(err), secret) {
					t.Errorf("output shows a token or secret %q", secret)
				}
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestChatCancel: a message typed while an answer streams is queued and
// sent when it ends; /cancel stops the answer being streamed, whose line
// ends with [cancelled].
func TestChatCancel(t *testing.T) {
	long := strings.Repeat("The allowance depends on the district and the rent. ", 40)
	e := newChatEnv(t, scripted(t, offline.ScriptedConfig{Text: long, Rate: 50}), wsapi.Config{})
	id, _ := e.room(t, "42")
	r := startChat(t, []string{"--server", e.url, "--room", strconv.FormatInt(id, 10), "--user", "42"},
		map[string]string{"PARLEY_JWT_SECRET": testJWTSecret}, nil)
	waitFor(t, r.stderr, "joined room")
	io.WriteString(r.stdin, "Tell me everything\n")
	waitFor(t, r.stdout, "bot: The allowance")
	io.WriteString(r.stdin, "And another thing?\n")
	waitFor(t, r.stderr, "queued; it is sent when the answer ends")
	io.WriteString(r.stdin, "/cancel\n")
	waitFor(t, r.stdout, " [cancelled]\nyou: And another thing?\nbot: The allowance")
	io.WriteString(r.stdin, "/cancel\n")
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(r.stdout.String(), "[cancelled]") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the second answer was not cancelled:\n%s", r.stdout)
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.stdin.Close()
	if err := r.wait(t); err != nil {
		t.Fatalf("runChat: %v\nstderr:\n%s", err, r.stderr)
	}
	want := `^you: Tell me everything\nbot: The allowance[^\n]* \[cancelled\]\nyou: And another thing\?\nbot: The allowance[^\n]* \[cancelled\]\n$`
	if ok, _ := regexp.MatchString(want, r.stdout.String()); !ok {
		t.Errorf("stdout = %q, want two questions, each with a partial answer marked [cancelled]", r.stdout)
	}
}

// TestChatWaitBound: at end of input chatctl waits for the answer in flight
// at most --wait, then says how to follow it.
func TestChatWaitBound(t *testing.T) {
	e := newChatEnv(t, scripted(t, offline.ScriptedConfig{Text: strings.Repeat("slow ", 100), Rate: 5}), wsapi.Config{})
	id, version := e.room(t, "42")
	r := startChat(t, []string{"--server", e.url, "--room", strconv.FormatInt(id, 10), "--token", mint(t, testJWTSecret, "42"), "--wait", "1s"},
		nil, strings.NewReader("Take your time\n"))
	err := r.wait(t)
	if err == nil || !strings.Contains(err.Error(), "did not end within --wait 1s") || exitCode(err) != 1 {
		t.Fatalf("runChat = %v (exit %d), want the --wait explanation", err, exitCode(err))
	}
	// The rerun hint names a version past the question.
	m := regexp.MustCompile(`--after (\d+)`).FindStringSubmatch(err.Error())
	if m == nil {
		t.Fatalf("error %q has no --after", err)
	}
	if after, _ := strconv.ParseInt(m[1], 10, 64); after <= version {
		t.Errorf("rerun --after %d, want beyond the room's version before the question, %d", after, version)
	}
	if !strings.HasPrefix(r.stdout.String(), "you: Take your time\nbot: slow ") {
		t.Errorf("stdout = %q, want the question and the start of the answer", r.stdout)
	}
}

// TestChatServerShutdown: the gateway's 1001 is explained with a rerun
// line, exit status 3.
func TestChatServerShutdown(t *testing.T) {
	e := newChatEnv(t, scripted(t, offline.ScriptedConfig{Text: testAnswer}), wsapi.Config{})
	id, version := e.room(t, "42", "Who can apply?")
	r := startChat(t, []string{"--server", e.url, "--room", strconv.FormatInt(id, 10), "--token", mint(t, testJWTSecret, "42")}, nil, nil)
	waitFor(t, r.stdout, "bot: "+testAnswer+"\n")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := e.gw.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	err := r.wait(t)
	want := "rerun: chatctl chat --server " + e.url + " --room " + strconv.FormatInt(id, 10) + " --after " + strconv.FormatInt(version, 10)
	if err == nil || !strings.Contains(err.Error(), "close 1001") || !strings.HasSuffix(err.Error(), want) {
		t.Errorf("runChat = %v, want a 1001 explanation ending %q", err, want)
	}
	if got := exitCode(err); got != exitReconnect {
		t.Errorf("exit status %d, want %d", got, exitReconnect)
	}
}

func TestChatCreate(t *testing.T) {
	e := newChatEnv(t, scripted(t, offline.ScriptedConfig{Text: testAnswer}), wsapi.Config{})
	r := startChat(t, []string{"--server", e.url + "/", "--create", "Release notes", "--user", "42"},
		map[string]string{"PARLEY_JWT_SECRET": testJWTSecret}, strings.NewReader("What changed?\n"))
	if err := r.wait(t); err != nil {
		t.Fatalf("runChat: %v\nstderr:\n%s", err, r.stderr)
	}
	m := regexp.MustCompile(`created room (\d+) "Release notes"`).FindStringSubmatch(r.stderr.String())
	if m == nil {
		t.Fatalf("stderr %q does not name the new room", r.stderr)
	}
	id, _ := strconv.ParseInt(m[1], 10, 64)
	info, err := e.svc.Room(t.Context(), id, "42")
	if err != nil {
		t.Fatalf("the room chatctl reported: %v", err)
	}
	if info.Title != "Release notes" || info.Owner != "42" {
		t.Errorf("room = %+v, want Release notes of user 42", info)
	}
	if got, want := r.stdout.String(), "you: What changed?\nbot: "+testAnswer+"\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}

	t.Run("bad token", func(t *testing.T) {
		r := startChat(t, []string{"--server", e.url, "--create", "X", "--token", "expired"}, nil, strings.NewReader(""))
		err := r.wait(t)
		if err == nil || !strings.Contains(err.Error(), "HTTP 401 unauthorized") || exitCode(err) != exitUnauthorized {
			t.Errorf("runChat = %v (exit %d), want HTTP 401 explained, exit %d", err, exitCode(err), exitUnauthorized)
		}
	})
	t.Run("title refused", func(t *testing.T) {
		r := startChat(t, []string{"--server", e.url, "--create", strings.Repeat("t", 201), "--token", mint(t, testJWTSecret, "42")}, nil, strings.NewReader(""))
		if err := r.wait(t); err == nil || !strings.Contains(err.Error(), "HTTP 400 invalid") {
			t.Errorf("runChat = %v, want the server's 400 explained", err)
		}
	})
	t.Run("no server", func(t *testing.T) {
		r := startChat(t, []string{"--server", "http://127.0.0.1:1", "--room", "5", "--token", "t"}, nil, strings.NewReader(""))
		if err := r.wait(t); err == nil || !strings.Contains(err.Error(), "is the server running?") {
			t.Errorf("runChat = %v, want a connect error", err)
		}
	})
}

// TestChatInterrupt: ending the context (Ctrl-C) mid-answer leaves cleanly
// and says how to see the rest.
func TestChatInterrupt(t *testing.T) {
	e := newChatEnv(t, scripted(t, offline.ScriptedConfig{Text: strings.Repeat("slow ", 100), Rate: 20}), wsapi.Config{})
	id, _ := e.room(t, "42")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	defer pw.Close()
	var stdout, stderr domaintest.SyncBuffer
	done := make(chan error, 1)
	go func() {
		done <- runChat(ctx, []string{"--server", e.url, "--room", strconv.FormatInt(id, 10), "--token", mint(t, testJWTSecret, "42")},
			env(nil), pr, &stdout, &stderr)
	}()
	waitFor(t, &stderr, "joined room")
	io.WriteString(pw, "Go on\n")
	waitFor(t, &stdout, "bot: slow ")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("runChat after interrupt = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("runChat did not return 5s after the interrupt")
	}
	if !regexp.MustCompile(`interrupted; the answer goes on on the server; to see it: chatctl chat --server \S+ --room \d+ --after \d+\n`).MatchString(stderr.String()) {
		t.Errorf("stderr %q does not say how to see the rest", stderr.String())
	}
	if !strings.HasSuffix(stdout.String(), "\n") {
		t.Errorf("stdout %q does not end its line", stdout.String())
	}
}

// TestChatAnswersPings: a session outlives the server's pong wait because
// chatctl answers the server's pings.
func TestChatAnswersPings(t *testing.T) {
	e := newChatEnv(t, scripted(t, offline.ScriptedConfig{Text: testAnswer}),
		wsapi.Config{Timing: wsapi.Timing{PingPeriod: 20 * time.Millisecond, PongWait: 100 * time.Millisecond}})
	id, _ := e.room(t, "42")
	r := startChat(t, []string{"--server", e.url, "--room", strconv.FormatInt(id, 10), "--token", mint(t, testJWTSecret, "42")}, nil, nil)
	waitFor(t, r.stderr, "joined room")
	time.Sleep(500 * time.Millisecond) // five pong waits
	io.WriteString(r.stdin, "Still there?\n")
	r.stdin.Close()
	if err := r.wait(t); err != nil {
		t.Fatalf("runChat: %v", err)
	}
	if got, want := r.stdout.String(), "you: Still there?\nbot: "+testAnswer+"\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
}

// TestChatJSON: --json prints each frame raw, one per line.
func TestChatJSON(t *testing.T) {
	e := newChatEnv(t, scripted(t, offline.ScriptedConfig{Text: testAnswer}), wsapi.Config{})
	id, _ := e.room(t, "42", "Who can apply?")
	r := startChat(t, []string{"--server", e.url, "--room", strconv.FormatInt(id, 10), "--token", mint(t, testJWTSecret, "42"), "--json"},
		nil, strings.NewReader("Again?\n"))
	if err := r.wait(t); err != nil {
		t.Fatal(err)
	}
	var types []string
	var text string
	for line := range strings.Lines(r.stdout.String()) {
		var f serverFrame
		if err := json.Unmarshal([]byte(line), &f); err != nil {
			t.Fatalf("line %q is not a frame: %v", line, err)
		}
		types = append(types, f.Type)
		if f.Type == "chunk" {
			text += f.Message
		}
	}
	if len(types) < 3 || types[0] != "history" || types[1] != "message" || types[len(types)-1] != "answer" || text != testAnswer {
		t.Errorf("frames %v (chunks %q), want history, message, chunks spelling the answer, answer", types, text)
	}
}

func TestChatUsage(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want []string
	}{
		{"nothing", nil, nil, []string{"--room is required", "no token"}},
		{"room and create", []string{"--room", "1", "--create", "x", "--token", "t"}, nil, []string{"--room and --create both given"}},
		{"blank title", []string{"--create", " ", "--token", "t"}, nil, []string{"--create needs a title"}},
		{"room not positive", []string{"--room", "0", "--token", "t"}, nil, []string{"--room 0 is not a room id"}},
		{"room not a number", []string{"--room", "lobby"}, nil, []string{`invalid value "lobby" for flag --room`}},
		{"after negative", []string{"--room", "1", "--after", "-1", "--token", "t"}, nil, []string{`--after "-1" is not a version`}},
		{"after with create", []string{"--create", "x", "--after", "3", "--token", "t"}, nil, []string{"--after resumes an existing room"}},
		{"hash without after", []string{"--room", "1", "--hash", strings.Repeat("a", 64), "--token", "t"}, nil, []string{"--hash goes with --after"}},
		{"hash malformed", []string{"--room", "1", "--after", "3", "--hash", "xyz", "--token", "t"}, nil, []string{`--hash "xyz" is not a frame's hash`}},
		{"bad server", []string{"--room", "1", "--server", "127.0.0.1:8080", "--token", "t"}, nil, []string{`--server "127.0.0.1:8080"`}},
		{"ftp server", []string{"--room", "1", "--server", "ftp://h", "--token", "t"}, nil, []string{"want an http:// or https:// URL"}},
		{"token and user", []string{"--room", "1", "--token", "t", "--user", "4"}, nil, []string{"--token and --user both given"}},
		{"short secret", []string{"--room", "1", "--user", "4"}, map[string]string{"PARLEY_JWT_SECRET": "short-secret"}, []string{"shorter than 32 bytes"}},
		{"negative wait", []string{"--room", "1", "--token", "t", "--wait", "-1s"}, nil, []string{"--wait -1s is negative"}},
		{"stray argument", []string{"--room", "1", "--token", "t", "hello"}, nil, []string{`unexpected argument "hello"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := runChat(t.Context(), tc.args, env(tc.env), strings.NewReader(""), &stdout, &stderr)
			if err == nil || exitCode(err) != 2 {
				t.Fatalf("runChat = %v (exit %d), want a usage error", err, exitCode(err))
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q; want nothing: main reports the error on stderr", stdout.String())
			}
			if strings.Contains(stderr.String(), "short-secret") {
				t.Error("stderr shows the secret")
			}
		})
	}
}

// TestRunWiresChatAndToken: run dispatches both commands.
func TestRunWiresChatAndToken(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{"chat", "--room", "0"}, env(nil), nil, &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "--room 0 is not a room id") {
		t.Errorf("run chat = %v, want chat's usage error", err)
	}
	stdout.Reset()
	if err := run(t.Context(), []string{"token", "--user", "42"}, env(map[string]string{"PARLEY_JWT_SECRET": testJWTSecret}), nil, &stdout, &stderr); err != nil {
		t.Fatalf("run token: %v", err)
	}
	if p := verifyToken(t, testJWTSecret, strings.TrimSpace(stdout.String())); p.UserID != "42" {
		t.Errorf("token for user %q, want 42", p.UserID)
	}
}
