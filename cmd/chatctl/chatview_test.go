package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

func TestTranscript(t *testing.T) {
	for _, tc := range []struct {
		name   string
		frames []string
		want   string
	}{
		{
			name: "history with every status",
			frames: []string{`{"type":"history","version":9,"messages":[
				{"id":"m1","role":"user","message":"What changed?","status":"complete","sources":[],"version":1},
				{"id":"a1","role":"assistant","message":"Version 2 adds tickets.","status":"complete","version":4,
				 "sources":[{"document":"CHANGELOG.md","chunk_id":"changelog-0003","score":0.823,"snippet":"2.0:\n tickets  for WebSocket auth"}]},
				{"id":"m2","role":"user","message":"And 1.9?","status":"complete","sources":[],"version":5},
				{"id":"a2","role":"assistant","message":"Ver","status":"failed","sources":[],"version":6},
				{"id":"m3","role":"user","message":"Again?","status":"complete","sources":[],"version":7},
				{"id":"a3","role":"assistant","message":"","status":"cancelled","sources":[],"version":8}]}`},
			want: "you: What changed?\nbot: Version 2 adds tickets.\n" +
				"  [1] CHANGELOG.md (changelog-0003, score 0.82): 2.0: tickets for WebSocket auth\n" +
				"you: And 1.9?\nbot: Ver [failed]\nyou: Again?\nbot:  [cancelled]\n",
		},
		{
			name: "a streaming answer in the history goes on with its chunks",
			frames: []string{
				`{"type":"history","version":3,"messages":[{"id":"m1","role":"user","message":"Q","status":"complete"},{"id":"a1","role":"assistant","message":"Up ","status":"streaming"}]}`,
				`{"type":"chunk","answer_id":"a1","seq":1,"message":"to ","is_streaming":true,"version":4}`,
				`{"type":"chunk","answer_id":"a1","seq":2,"message":"you.","is_streaming":true,"version":5}`,
				`{"type":"answer","answer_id":"a1","message":"Up to you.","is_streaming":false,"sources":[],"version":6}`,
			},
			want: "you: Q\nbot: Up to you.\n",
		},
		{
			name: "live question, chunks, answer with sources",
			frames: []string{
				`{"type":"message","role":"user","id":"m1","message":"What changed?","client_id":"c1","version":1}`,
				`{"type":"chunk","answer_id":"a1","seq":0,"message":"Tickets","is_streaming":true,"version":2}`,
				`{"type":"chunk","answer_id":"a1","seq":1,"message":".","is_streaming":true,"version":3}`,
				`{"type":"answer","answer_id":"a1","message":"Tickets.","is_streaming":false,"version":4,
				  "sources":[{"document":"a.md","chunk_id":"a-1","score":0.5,"snippet":"one"},{"document":"b.md","chunk_id":"b-2","score":0.25,"snippet":"` + strings.Repeat("long ", 40) + `"}]}`,
			},
			want: "you: What changed?\nbot: Tickets.\n  [1] a.md (a-1, score 0.50): one\n" +
				"  [2] b.md (b-2, score 0.25): " + strings.TrimSpace(strings.Repeat("long ", 24)) + "…\n",
		},
		{
			name: "resumed mid-answer: the whole answer is shown at its end",
			frames: []string{
				`{"type":"chunk","answer_id":"a1","seq":2,"message":" for auth.","is_streaming":true,"version":4}`,
				`{"type":"answer","answer_id":"a1","message":"Tickets for auth.","is_streaming":false,"sources":[],"version":5}`,
			},
			want: "bot:  for auth.\nbot (whole answer): Tickets for auth.\n",
		},
		{
			name: "an answer with no chunks",
			frames: []string{
				`{"type":"answer","answer_id":"a1","message":"","is_streaming":false,"sources":[],"version":5}`,
			},
			want: "bot: (no text)\n",
		},
		{
			name: "failed and cancelled, with and without chunks",
			frames: []string{
				`{"type":"chunk","answer_id":"a1","seq":0,"message":"Part","is_streaming":true,"version":2}`,
				`{"type":"answer_failed","answer_id":"a1","reason":"timeout","is_streaming":false,"version":3}`,
				`{"type":"answer_failed","answer_id":"a2","reason":"generator_error","is_streaming":false,"version":5}`,
				`{"type":"chunk","answer_id":"a3","seq":0,"message":"Half","is_streaming":true,"version":7}`,
				`{"type":"answer_cancelled","answer_id":"a3","reason":"cancelled","is_streaming":false,"version":8}`,
			},
			want: "bot: Part [failed: timeout]\nbot: [failed: generator_error]\nbot: Half [cancelled]\n",
		},
		{
			name: "a message from another tab ends an open line",
			frames: []string{
				`{"type":"history","version":3,"messages":[{"id":"a1","role":"assistant","message":"Up","status":"streaming"}]}`,
				`{"type":"message","role":"user","id":"m2","message":"Hello","version":4}`,
				`{"type":"pong"}`,
				`{"type":"error","code":"busy","message":"an answer is already streaming"}`,
				`{"type":"future_frame","version":5}`,
			},
			want: "bot: Up\nyou: Hello\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			view := &transcript{w: &out}
			for _, data := range tc.frames {
				var f serverFrame
				if err := json.Unmarshal([]byte(data), &f); err != nil {
					t.Fatalf("frame %s: %v", data, err)
				}
				view.show(f, []byte(data))
			}
			view.endLine()
			if got := out.String(); got != tc.want {
				t.Errorf("transcript:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestSessionState: the version a rerun resumes from, and when an answer
// counts as in flight.
func TestSessionState(t *testing.T) {
	var stderr bytes.Buffer
	s := newSession(chatConfig{after: -1, server: &url.URL{Scheme: "http", Host: "127.0.0.1:8080"}, roomID: 12}, nil, io.Discard, &stderr)
	steps := []struct {
		frame        string
		sent         string // a client id sent before the frame
		wantLast     int64
		wantInFlight bool
	}{
		{frame: `{"type":"history","version":5,"messages":[]}`, wantLast: 5},
		{sent: "c1", frame: `{"type":"pong"}`, wantLast: 5, wantInFlight: true},
		{frame: `{"type":"message","role":"user","id":"m","message":"q","client_id":"c1","version":6}`, wantLast: 6, wantInFlight: true},
		{frame: `{"type":"chunk","answer_id":"a","seq":0,"message":"x","version":8}`, wantLast: 8, wantInFlight: true},
		{sent: "c2", frame: `{"type":"error","code":"busy","message":"busy"}`, wantLast: 8, wantInFlight: true},
		{frame: `{"type":"answer","answer_id":"a","message":"x","sources":[],"version":9}`, wantLast: 9},
		{frame: `{"type":"message","role":"user","id":"m2","message":"from another tab","version":10}`, wantLast: 10, wantInFlight: true},
		{frame: `{"type":"answer_cancelled","answer_id":"b","reason":"cancelled","version":12}`, wantLast: 12},
		// A history replaces the state, even at a lower version (an
		// --after beyond the room's version).
		{frame: `{"type":"history","version":3,"messages":[{"id":"a","role":"assistant","message":"","status":"streaming"}]}`, wantLast: 3, wantInFlight: true},
		{frame: `{"type":"chunk","answer_id":"a","seq":0,"message":"x","version":4,"hash":"` + strings.Repeat("cd", 32) + `"}`, wantLast: 4, wantInFlight: true},
	}
	for i, st := range steps {
		if st.sent != "" {
			s.sent[st.sent] = struct{}{}
			s.unresolved++
		}
		s.handle([]byte(st.frame))
		if s.last != st.wantLast || s.pending() != st.wantInFlight {
			t.Errorf("step %d %s: last %d, in flight %v; want %d, %v", i, st.frame, s.last, s.pending(), st.wantLast, st.wantInFlight)
		}
	}
	if want := "chatctl chat --room 12 --after 4 --hash " + strings.Repeat("cd", 32); s.rerun() != want {
		t.Errorf("rerun %q, want %q: the version and hash of the last frame", s.rerun(), want)
	}
	want := "chatctl: the server refused that: busy: busy (the message was not sent: wait for the answer, or /cancel it, then send it again)\n"
	if !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr %q does not show the error frame as %q", stderr.String(), want)
	}
}

func TestExplainClose(t *testing.T) {
	local := &url.URL{Scheme: "http", Host: "127.0.0.1:8080"}
	other := &url.URL{Scheme: "https", Host: "chat.example", Path: "/parley"}
	for _, tc := range []struct {
		name     string
		err      error
		server   *url.URL
		last     int64
		minted   bool
		wantExit int
		want     []string
	}{
		{"token refused", &websocket.CloseError{Code: 4401, Text: "token expired"}, local, 17, false, exitUnauthorized,
			[]string{"refused the token (close 4401: token expired)", "missing, invalid or expired; get a new one", "rerun: chatctl chat --room 7 --after 17"}},
		{"minted token refused", &websocket.CloseError{Code: 4401}, local, -1, true, exitUnauthorized,
			[]string{"(close 4401)", "PARLEY_JWT_SECRET is not the one", "rerun: chatctl chat --room 7"}},
		{"not your room", &websocket.CloseError{Code: 4403, Text: "no such room, or it is not yours"}, local, 3, false, exitForbidden,
			[]string{"room 7 does not exist, was deleted, or is not the token user's (close 4403", "--create TITLE"}},
		{"rate limited", &websocket.CloseError{Code: 4429}, local, 4, false, exitReconnect,
			[]string{"rate limited (close 4429)", "rerun: chatctl chat --room 7 --after 4"}},
		{"too slow", &websocket.CloseError{Code: 4000, Text: "too slow"}, other, 1234, false, exitReconnect,
			[]string{"too slow (close 4000: too slow)", "rerun with --after 1234", "chatctl chat --server https://chat.example/parley --room 7 --after 1234"}},
		{"shutting down", &websocket.CloseError{Code: 1001}, local, 9, false, exitReconnect,
			[]string{"shutting down or restarting (close 1001)", "--after 9"}},
		{"restarting", &websocket.CloseError{Code: 1012}, local, 9, false, exitReconnect, []string{"(close 1012)", "--after 9"}},
		{"store unavailable", &websocket.CloseError{Code: 1013}, local, 9, false, exitReconnect, []string{"event store is unavailable (close 1013)", "--after 9"}},
		{"dropped", &websocket.CloseError{Code: 1006}, local, 9, false, exitReconnect, []string{"dropped (close 1006)", "--after 9"}},
		{"dropped without a close", io.ErrUnexpectedEOF, local, 9, false, exitReconnect, []string{"dropped: unexpected EOF", "--after 9"}},
		{"protocol violation", &websocket.CloseError{Code: 1008}, local, 9, false, 1, []string{"(close 1008)", "bug in chatctl"}},
		{"other", &websocket.CloseError{Code: 1011, Text: "internal error"}, local, 9, false, 1, []string{"closed the connection (close 1011: internal error)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSession(chatConfig{server: tc.server, roomID: 7, after: -1, minted: tc.minted}, nil, io.Discard, io.Discard)
			s.last = tc.last
			err := s.explain(tc.err)
			if got := exitCode(err); got != tc.wantExit {
				t.Errorf("exit status %d, want %d (%v)", got, tc.wantExit, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not say %q", err, w)
				}
			}
			if tc.last < 0 && strings.Contains(err.Error(), "--after") {
				t.Errorf("%q offers --after without a version seen", err)
			}
			if !errors.As(err, new(*exitError)) {
				t.Errorf("%v is not an *exitError", err)
			}
		})
	}
}

func TestChatURL(t *testing.T) {
	hash := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		server string
		after  int64
		hash   string
		want   string
	}{
		{"http://127.0.0.1:8080", -1, "", "ws://127.0.0.1:8080/ws/chat/42/"},
		{"http://127.0.0.1:8080/", 0, "", "ws://127.0.0.1:8080/ws/chat/42/?after=0"},
		{"https://chat.example/parley/", 17, "", "wss://chat.example/parley/ws/chat/42/?after=17"},
		{"https://chat.example/parley/", 17, hash, "wss://chat.example/parley/ws/chat/42/?after=17&hash=" + hash},
		{"ws://h:1", -1, "", "ws://h:1/ws/chat/42/"},
		{"wss://h", -1, "", "wss://h/ws/chat/42/"},
	} {
		u, err := parseServer(tc.server)
		if err != nil {
			t.Fatalf("parseServer(%q): %v", tc.server, err)
		}
		if got := chatURL(u, 42, tc.after, tc.hash); got != tc.want {
			t.Errorf("chatURL(%q, after %d) = %q, want %q", tc.server, tc.after, got, tc.want)
		}
	}
}
