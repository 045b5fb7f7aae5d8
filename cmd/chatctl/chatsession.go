package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/parleychat/parley/adapters/wsapi"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
)

// session is one connection of chatctl chat. Everything but the socket's
// reads happens on the goroutine that calls run, so its state needs no
// lock.
type session struct {
	cfg    chatConfig
	conn   *websocket.Conn
	view   *transcript
	stderr io.Writer

	// synced is true once the catch-up has arrived: the history frame, or,
	// resuming with --after, the pong to the ping sent on connect (the
	// server queues the catch-up before it reads any client frame).
	synced bool
	// last is the version of the last event frame (or history) seen, -1
	// before any: what a rerun passes to --after; lastHash is that
	// event's chain hash ("" when the frame had none), for --hash.
	last     int64
	lastHash string
	// answering is true from a user message (or a streaming history
	// entry) until its answer's final frame: the room is busy.
	answering bool
	// sent holds the client ids of messages sent whose echo has not come
	// back; unresolved counts the sends neither echoed nor refused.
	sent       map[string]struct{}
	unresolved int
	// queue holds the messages typed while the room was busy, sent one by
	// one as answers end: the server refuses, not queues, a message sent
	// while an answer streams.
	queue []string
}

func newSession(cfg chatConfig, conn *websocket.Conn, stdout, stderr io.Writer) *session {
	return &session{
		cfg:      cfg,
		conn:     conn,
		view:     &transcript{w: stdout, raw: cfg.json},
		stderr:   stderr,
		last:     cfg.after,
		lastHash: cfg.hash,
		sent:     map[string]struct{}{},
	}
}

// run serves the session until the user leaves, ctx ends or the server
// closes, and closes the socket. It owns two goroutines: the socket's only
// reader, which it waits for, and the stdin reader. The stdin reader stops
// at the next line once run returns, but a Read in progress cannot be
// interrupted (os.Stdin on a terminal), so run does not wait for it; main
// exits right after.
func (s *session) run(ctx context.Context, stdin io.Reader) error {
	s.conn.SetReadDeadline(time.Now().Add(chatServerSilence))
	s.conn.SetPingHandler(func(data string) error {
		s.conn.SetReadDeadline(time.Now().Add(chatServerSilence))
		err := s.conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(chatWriteWait))
		var ne net.Error
		if errors.Is(err, websocket.ErrCloseSent) || errors.As(err, &ne) {
			return nil // the read that follows reports the connection's fate
		}
		return err
	})
	done := make(chan struct{})
	frames := make(chan []byte)
	readErr := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Go(func() { s.read(frames, readErr, done) })

	lines := make(chan string)
	stdinErr := make(chan error, 1)
	go readLines(stdin, lines, stdinErr, done)

	var err error
	if s.cfg.after >= 0 {
		err = s.send(struct {
			Type string `json:"type"`
		}{"ping"})
	}
	if err == nil {
		err = s.loop(ctx, frames, readErr, lines, stdinErr)
	} else {
		err = s.sendFailed(err, readErr)
	}
	close(done)
	s.conn.Close()
	wg.Wait()
	return err
}

// read is the socket's reader: it passes each frame to frames, or drops it
// once done is closed, until the socket fails or closes, and then reports
// why on errc. Every frame, and every ping (see run), extends the read
// deadline.
func (s *session) read(frames chan<- []byte, errc chan<- error, done <-chan struct{}) {
	for {
		_, data, err := s.conn.ReadMessage()
		if err != nil {
			errc <- err
			return
		}
		s.conn.SetReadDeadline(time.Now().Add(chatServerSilence))
		select {
		case frames <- data:
		case <-done:
		}
	}
}

// readLines sends stdin's lines to lines until end of input, then reports
// the scanner's error (nil at a clean end) on errc and closes lines.
func readLines(stdin io.Reader, lines chan<- string, errc chan<- error, done <-chan struct{}) {
	sc := bufio.NewScanner(stdin)
	sc.Buffer(make([]byte, 0, 64<<10), maxInputLine)
	for sc.Scan() {
		select {
		case lines <- sc.Text():
		case <-done:
			return
		}
	}
	errc <- sc.Err()
	close(lines)
}

func (s *session) loop(ctx context.Context, frames <-chan []byte, readErr <-chan error, lines <-chan string, stdinErr <-chan error) error {
	var (
		drain     *time.Timer // runs at end of input while answers are to come
		drained   <-chan time.Time
		inputErr  error // why stdin ended, when it failed
		leaveWith = func(err error) error {
			if n := len(s.queue); n > 0 {
				fmt.Fprintf(s.stderr, "chatctl: %d queued message(s) not sent\n", n)
			}
			s.closeNormally(frames, readErr)
			return err
		}
	)
	defer func() {
		if drain != nil {
			drain.Stop()
		}
	}()
	for {
		// Input waits for the catch-up, so that the history comes first and
		// /quit leaves after it.
		var input <-chan string
		if s.synced {
			input = lines
		}
		select {
		case <-ctx.Done():
			if s.answering {
				s.view.endLine()
				fmt.Fprintf(s.stderr, "chatctl: interrupted; the answer goes on on the server; to see it: %s\n", s.rerun())
			}
			return leaveWith(nil)

		case data := <-frames:
			s.handle(data)
			sent, err := s.sendQueued()
			if err != nil {
				return s.sendFailed(err, readErr)
			}
			if drain != nil {
				if !s.pending() {
					return leaveWith(inputErr)
				}
				if sent {
					drain.Reset(s.cfg.wait) // --wait bounds each answer
				}
			}

		case err := <-readErr:
			s.view.endLine()
			return s.explain(err)

		case line, ok := <-input:
			if !ok {
				lines = nil
				if err := <-stdinErr; err != nil {
					inputErr = fmt.Errorf("chat: read stdin: %w", err)
				}
				if !s.pending() || s.cfg.wait == 0 {
					return leaveWith(inputErr)
				}
				drain = time.NewTimer(s.cfg.wait)
				drained = drain.C
				continue
			}
			quit, err := s.input(line)
			if err != nil {
				return s.sendFailed(err, readErr)
			}
			if quit {
				return leaveWith(nil)
			}

		case <-drained:
			return leaveWith(errors.Join(inputErr, fmt.Errorf(
				"chat: end of input, and the answer in flight did not end within --wait %v; it goes on on the server; to see it: %s",
				s.cfg.wait, s.rerun())))
		}
	}
}

// busy reports whether a message sent now would be early: before the
// catch-up, while an answer streams, or before the server has echoed (or
// refused) the last one sent.
func (s *session) busy() bool { return !s.synced || s.answering || s.unresolved > 0 }

// pending reports whether anything is still to come before the user may
// leave at end of input: the room is busy or messages wait in the queue.
func (s *session) pending() bool { return s.busy() || len(s.queue) > 0 }

// sendQueued sends the next queued message once the room is free.
func (s *session) sendQueued() (bool, error) {
	if s.busy() || len(s.queue) == 0 {
		return false, nil
	}
	text := s.queue[0]
	s.queue = s.queue[1:]
	return true, s.sendMessage(text)
}

// handle tracks the protocol state a frame changes and shows it.
func (s *session) handle(data []byte) {
	var f serverFrame
	if err := json.Unmarshal(data, &f); err != nil {
		fmt.Fprintf(s.stderr, "chatctl: ignoring a server frame that is not a JSON object: %v\n", err)
		return
	}
	switch {
	case f.Type == "history" && f.Version != nil:
		// A history frame replaces the client's state, also when it
		// answers an --after the log no longer holds.
		if s.cfg.after >= 0 && !s.synced {
			fmt.Fprintf(s.stderr, "chatctl: the server no longer holds version %d as this client saw it (the room changed, or its log lost its newest events); here is the room as it is\n", s.cfg.after)
		}
		s.last, s.lastHash = *f.Version, f.Hash
	case f.Version != nil && *f.Version > s.last:
		s.last, s.lastHash = *f.Version, f.Hash
	}
	if !s.synced && (f.Type == "history" || f.Type == "pong") {
		s.synced = true
		fmt.Fprintf(s.stderr, "chatctl: joined room %d; type a message and press Enter (/help lists commands)\n", s.cfg.roomID)
	}
	switch f.Type {
	case "history":
		n := len(f.Messages)
		s.answering = n > 0 && f.Messages[n-1].Role == room.RoleAssistant && f.Messages[n-1].Status == room.StatusStreaming
	case "message":
		if _, ok := s.sent[f.ClientID]; ok {
			delete(s.sent, f.ClientID)
			s.resolved()
		}
		s.answering = true
	case "chunk":
		s.answering = true
	case "answer", "answer_failed", "answer_cancelled":
		s.answering = false
	case "error":
		// The refused frame was one of our messages; error frames do not
		// always say which, so count rather than match.
		delete(s.sent, f.ClientID)
		s.resolved()
		if !s.cfg.json {
			fmt.Fprintf(s.stderr, "chatctl: the server refused that: %s: %s%s\n", f.Code, f.Message, errorHint(f.Code))
		}
	}
	s.view.show(f, data)
}

func (s *session) resolved() {
	if s.unresolved > 0 {
		s.unresolved--
	}
}

// errorHint tells the user what to do about an error frame's code.
func errorHint(code string) string {
	switch code {
	case "busy":
		return " (the message was not sent: wait for the answer, or /cancel it, then send it again)"
	case "rate_limited":
		return " (the message was not sent: wait a little, then send it again)"
	case "too_large":
		return fmt.Sprintf(" (shorten it to %d bytes)", room.MaxMessageBytes)
	case "internal":
		return " (the message was not stored: send it again later)"
	}
	return ""
}

const chatHelp = `commands:
  /cancel   cancel the answer being streamed
  /quit     leave at once
  /help     this list
Any other line is sent as a message; one typed while an answer streams is
sent when it ends. End of input leaves once the answers to come have come.
`

// input acts on one line of stdin: a command, or a message to send.
func (s *session) input(line string) (quit bool, err error) {
	line = strings.TrimSuffix(line, "\r")
	switch strings.TrimSpace(line) {
	case "":
		return false, nil
	case "/quit":
		return true, nil
	case "/help":
		fmt.Fprint(s.stderr, chatHelp)
		return false, nil
	case "/cancel":
		return false, s.send(struct {
			Type string `json:"type"`
		}{"cancel"})
	}
	// Refuse here what the server would punish with a close (1007) or a
	// protocol violation, or refuse anyway.
	switch {
	case !utf8.ValidString(line):
		fmt.Fprintln(s.stderr, "chatctl: not sent: the line is not valid UTF-8")
		return false, nil
	case strings.ContainsRune(line, 0):
		fmt.Fprintln(s.stderr, "chatctl: not sent: the line contains a NUL character")
		return false, nil
	case len(line) > room.MaxMessageBytes:
		fmt.Fprintf(s.stderr, "chatctl: not sent: the message is %d bytes; the server takes at most %d\n", len(line), room.MaxMessageBytes)
		return false, nil
	}
	if s.busy() {
		s.queue = append(s.queue, line)
		if !s.cfg.json {
			fmt.Fprintln(s.stderr, "chatctl: queued; it is sent when the answer ends (/cancel stops the answer)")
		}
		return false, nil
	}
	return false, s.sendMessage(line)
}

// sendMessage sends text as a message with a new client id.
func (s *session) sendMessage(text string) error {
	uid, err := domain.NewUUID(rand.Reader)
	if err != nil {
		return err
	}
	id := uid.String()
	if err := s.send(struct {
		Type     string `json:"type"`
		Message  string `json:"message"`
		ClientID string `json:"client_id"`
	}{"message", text, id}); err != nil {
		return err
	}
	s.sent[id] = struct{}{}
	s.unresolved++
	return nil
}

func (s *session) send(v any) error {
	s.conn.SetWriteDeadline(time.Now().Add(chatWriteWait))
	return s.conn.WriteJSON(v)
}

// sendFailed reports a failed write: the server's close, when it comes
// soon, explains it best.
func (s *session) sendFailed(err error, readErr <-chan error) error {
	select {
	case rerr := <-readErr:
		s.view.endLine()
		return s.explain(rerr)
	case <-time.After(chatCloseWait):
		s.view.endLine()
		return &exitError{Code: exitReconnect, Err: fmt.Errorf("chat: send: %w; to reconnect: %s", err, s.rerun())}
	}
}

// closeNormally sends a close frame (1000) and waits, boundedly, for the
// server's, dropping the frames that arrive meanwhile.
func (s *session) closeNormally(frames <-chan []byte, readErr <-chan error) {
	s.view.endLine()
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
	if err := s.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(chatWriteWait)); err != nil {
		return // the connection is gone already
	}
	t := time.NewTimer(chatCloseWait)
	defer t.Stop()
	for {
		select {
		case <-frames:
		case <-readErr:
			return
		case <-t.C:
			return
		}
	}
}

// explain turns the end of the connection into an error saying why, and
// what to do, with an exit status scripts can act on.
func (s *session) explain(err error) error {
	var ce *websocket.CloseError
	if !errors.As(err, &ce) {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			err = fmt.Errorf("the server sent nothing, not even a ping, for %v", chatServerSilence)
		}
		return &exitError{Code: exitReconnect, Err: fmt.Errorf("chat: the connection dropped: %v; to reconnect: %s", err, s.rerun())}
	}
	why := "close " + strconv.Itoa(ce.Code)
	if ce.Text != "" {
		why += ": " + ce.Text
	}
	fail := func(code int, format string, a ...any) error {
		return &exitError{Code: code, Err: fmt.Errorf("chat: "+format, a...)}
	}
	switch ce.Code {
	case wsapi.CloseUnauthorized:
		cause := "missing, invalid or expired"
		if s.cfg.minted {
			cause += ", or the server's PARLEY_JWT_SECRET is not the one chatctl signed it with"
		}
		return fail(exitUnauthorized, "the server refused the token (%s): it is %s; get a new one (chatctl token --user ID, or --user ID here) and rerun: %s", why, cause, s.rerun())
	case wsapi.CloseForbidden:
		return fail(exitForbidden, "room %d does not exist, was deleted, or is not the token user's (%s); check --room, or start a new room with --create TITLE", s.cfg.roomID, why)
	case wsapi.CloseRateLimited:
		return fail(exitReconnect, "rate limited (%s): too many connections or messages; wait a few seconds, then rerun: %s", why, s.rerun())
	case wsapi.CloseTooSlow:
		return fail(exitReconnect, "too slow (%s): this client did not keep up with the room, so the server dropped it; nothing is lost: rerun with --after %d: %s", why, s.last, s.rerun())
	case websocket.CloseGoingAway, websocket.CloseServiceRestart:
		return fail(exitReconnect, "the server is shutting down or restarting (%s); in a few seconds rerun: %s", why, s.rerun())
	case wsapi.CloseUnavailable:
		return fail(exitReconnect, "the server's event store is unavailable (%s); nothing is lost: in a few seconds rerun: %s", why, s.rerun())
	case websocket.CloseAbnormalClosure:
		return fail(exitReconnect, "the connection dropped (%s); to reconnect: %s", why, s.rerun())
	case websocket.CloseInvalidFramePayloadData, websocket.ClosePolicyViolation, websocket.CloseMessageTooBig:
		return fail(1, "the server closed the connection for a protocol violation (%s); this is a bug in chatctl", why)
	}
	return fail(1, "the server closed the connection (%s)", why)
}

// rerun is the command line that resumes this session where it stopped
// (with --after the last version seen), without the token.
func (s *session) rerun() string {
	cmd := "chatctl chat"
	if srv := s.cfg.server.String(); srv != defaultChatServer {
		cmd += " --server " + srv
	}
	cmd += " --room " + strconv.FormatInt(s.cfg.roomID, 10)
	if s.last >= 0 {
		cmd += " --after " + strconv.FormatInt(s.last, 10)
		if s.lastHash != "" {
			cmd += " --hash " + s.lastHash
		}
	}
	return cmd
}
