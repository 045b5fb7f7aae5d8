package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parleychat/parley/adapters/wsapi"
	"github.com/parleychat/parley/cmd/internal/cli"
	"github.com/parleychat/parley/domain"
)

const (
	defaultChatServer = "http://127.0.0.1:8080"
	// chatTokenTTL is the lifetime of a token chat mints for --user. The
	// server closes the socket with 4401 when it expires.
	chatTokenTTL = time.Hour
	// chatHTTPTimeout bounds POST /api/rooms and the WebSocket handshake.
	chatHTTPTimeout = 10 * time.Second
	// chatWriteWait is the deadline of every write to the socket.
	chatWriteWait = 10 * time.Second
	// chatServerSilence is how long the server may send nothing, not even
	// a ping (it pings every 25 s), before the connection counts as dead.
	chatServerSilence = 90 * time.Second
	// chatCloseWait is how long to wait for the server's close frame after
	// sending ours.
	chatCloseWait = 2 * time.Second
	// chatReadLimit caps one server frame; a history frame holds a whole
	// (capped) conversation.
	chatReadLimit = 32 << 20
	// maxInputLine is the longest stdin line read; longer ones end input.
	maxInputLine = 1 << 20
)

// Exit statuses of chatctl chat besides 0, 1 (other failures) and 2 (usage).
const (
	exitReconnect    = 3 // the connection ended but may be resumed with --after (and --hash)
	exitUnauthorized = 4 // the server refused the token
	exitForbidden    = 5 // no such room, or not the token user's
)

const chatUsage = `usage: chatctl chat (--room ID | --create TITLE) [--server URL] [--user ID | --token T] [--after V [--hash H]] [--json]

Talks to a room over Parley's WebSocket: prints the room's history, then sends
each line read from stdin as a message and streams the answer to stdout. A
line read while an answer streams is sent when it ends, so questions can be
piped in. End of input leaves once the answers to come have come (each within
--wait). Notices and refusals go to stderr. Lines that are just a command:

  /cancel   cancel the answer being streamed
  /quit     leave at once
  /help     list these commands

The access token is never printed. It comes from, in order: --token; a token
minted for --user (valid 1h) with PARLEY_JWT_SECRET; PARLEY_TOKEN.

  TOKEN=$(chatctl token --user 42); PARLEY_TOKEN=$TOKEN chatctl chat --create "Release notes"
  chatctl chat --user 42 --room 12345

Environment:
  PARLEY_TOKEN        access token, when neither --token nor --user is given
  PARLEY_JWT_SECRET   HS256 secret to mint the --user token with (default: the
                      public development secret, with a warning)

Exit status: 0 when you left; 2 usage; 3 the connection ended but can be
resumed (rerun with the --after and --hash the message names: when the server
no longer holds that position, it sends the room's history instead); 4 the
token was refused; 5 no such room or not yours; 1 anything else.
`

// chatConfig is chatctl chat's validated configuration.
type chatConfig struct {
	server *url.URL // http or https base URL of chatd
	roomID int64    // 0 until created with --create
	create string   // title of a room to create, or ""
	after  int64    // resume after this version; -1 means connect with history
	hash   string   // the chain hash of the event at after, "" when unknown
	json   bool     // print raw frames
	wait   time.Duration
	token  string
	minted bool // token was minted here with PARLEY_JWT_SECRET (or the dev secret)
}

// runChat implements `chatctl chat`: it connects to a room's WebSocket
// (creating the room first with --create), prints the history, sends the
// lines of stdin and streams the answers, until /quit, end of input (after
// the answer in flight, at most --wait), ctx's end, or the server closes.
func runChat(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	cfg, err := parseChat(args, getenv, stdout, stderr)
	if err != nil {
		return helpOK(err)
	}
	if cfg.create != "" {
		r, err := createRoom(ctx, cfg.server, cfg.token, cfg.create)
		if err != nil {
			return err
		}
		cfg.roomID = r.ID
		fmt.Fprintf(stderr, "chatctl: created room %d %q\n", r.ID, r.Title)
	}
	conn, err := dialRoom(ctx, cfg)
	if err != nil {
		return err
	}
	return newSession(cfg, conn, stdout, stderr).run(ctx, stdin)
}

// parseChat parses and validates the flags, reporting every problem at
// once, and resolves the token.
func parseChat(args []string, getenv func(string) string, stdout, stderr io.Writer) (chatConfig, error) {
	fs := cli.NewFlagSet("chat")
	server := fs.String("server", defaultChatServer, "base URL of the Parley server (http:// or https://)")
	roomID := fs.Int64("room", 0, "id of the room to join (required unless --create)")
	create := fs.String("create", "", "create a room with this title, then join it; its id is printed on stderr")
	token := fs.String("token", "", "access token (PARLEY_TOKEN keeps it out of ps and shell history)")
	user := fs.String("user", "", "mint a token for this user id with PARLEY_JWT_SECRET")
	after := fs.String("after", "", "resume after this version: no history, only the frames after it")
	hash := fs.String("hash", "", "with --after: the hash of the event at that version, so the server can tell whether the log still holds it")
	wait := fs.Duration("wait", time.Minute, "at end of input, how long to wait for each answer still to come (0: leave at once)")
	jsonOut := fs.Bool("json", false, "print every server frame as one raw JSON line instead of the conversation")
	if err := cli.Parse(fs, args, "chatctl chat", chatUsage, stdout); err != nil {
		return chatConfig{}, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	cfg := chatConfig{roomID: *roomID, create: *create, after: -1, json: *jsonOut, wait: *wait}
	var problems []error
	problem := func(format string, a ...any) { problems = append(problems, fmt.Errorf("chat: "+format, a...)) }
	if fs.NArg() > 0 {
		problem("unexpected argument %q (everything is a flag; see chatctl chat --help)", fs.Arg(0))
	}
	switch {
	case set["room"] && set["create"]:
		problem("--room and --create both given: join a room or create one, not both")
	case set["create"] && strings.TrimSpace(*create) == "":
		problem("--create needs a title, e.g. --create \"Release notes\"")
	case !set["room"] && !set["create"]:
		problem("--room is required (the room id, e.g. --room 42), or --create TITLE to start a new room")
	case set["room"] && *roomID <= 0:
		problem("--room %d is not a room id: want a positive integer", *roomID)
	}
	if set["after"] {
		v, err := strconv.ParseInt(*after, 10, 64)
		switch {
		case err != nil || v < 0:
			problem("--after %q is not a version: want a non-negative integer, the last version the previous session saw", *after)
		case set["create"]:
			problem("--after resumes an existing room; a room made with --create has nothing to resume")
		default:
			cfg.after = v
		}
	}
	if set["hash"] {
		switch {
		case !set["after"]:
			problem("--hash goes with --after: the hash of the event at that version")
		case !domain.IsChainHash(*hash):
			problem("--hash %q is not a frame's hash: want its 64 lowercase hex digits", *hash)
		default:
			cfg.hash = *hash
		}
	}
	if u, err := parseServer(*server); err != nil {
		problems = append(problems, err)
	} else {
		cfg.server = u
	}
	if *wait < 0 {
		problem("--wait %v is negative", *wait)
	}
	var signer tokenSigner
	switch {
	case *token != "" && *user != "":
		problem("--token and --user both given: pass a token, or a user to mint one for, not both")
	case *token != "":
		cfg.token = *token
	case *user != "":
		if strings.TrimSpace(*user) == "" {
			problem("--user is blank: want a user id, e.g. --user 42")
		}
		var err error
		if signer, err = newTokenSigner(getenv); err != nil {
			problems = append(problems, fmt.Errorf("chat: %w", err))
		}
		cfg.minted = true
	case getenv("PARLEY_TOKEN") != "":
		cfg.token = getenv("PARLEY_TOKEN")
	default:
		problem("no token: pass --user ID to mint one (signed with PARLEY_JWT_SECRET), --token T, or set PARLEY_TOKEN (TOKEN=$(chatctl token --user ID))")
	}
	if len(problems) > 0 {
		return chatConfig{}, cli.Usage(errors.Join(problems...))
	}

	if cfg.minted {
		t, err := signer.mint(strings.TrimSpace(*user), chatTokenTTL, nil, stderr)
		if err != nil {
			return chatConfig{}, fmt.Errorf("chat: %w", err)
		}
		cfg.token = t
	}
	return cfg, nil
}

// parseServer accepts an http(s) base URL (ws and wss are taken as http and
// https) and returns it without a trailing slash.
func parseServer(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("chat: --server %q is not a base URL like %s", s, defaultChatServer)
	}
	switch u.Scheme {
	case "http", "https":
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	default:
		return nil, fmt.Errorf("chat: --server %q: want an http:// or https:// URL like %s", s, defaultChatServer)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// createdRoom is the part of POST /api/rooms's answer chat uses.
type createdRoom struct {
	ID    int64  `json:"id"`
	Title string `json:"title"`
}

// createRoom creates a room owned by the token's user with POST /api/rooms.
func createRoom(ctx context.Context, server *url.URL, token, title string) (createdRoom, error) {
	body, err := json.Marshal(struct {
		Title string `json:"title"`
	}{title})
	if err != nil {
		return createdRoom{}, fmt.Errorf("chat: create room: %w", err)
	}
	endpoint := server.JoinPath("api", "rooms").String()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return createdRoom{}, fmt.Errorf("chat: create room: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := (&http.Client{Timeout: chatHTTPTimeout}).Do(req)
	if err != nil {
		return createdRoom{}, fmt.Errorf("chat: create room: %w (is the server running at %s? --server selects another)", err, server)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return createdRoom{}, fmt.Errorf("chat: create room: read the answer: %w", err)
	}
	switch resp.StatusCode {
	case http.StatusCreated:
	case http.StatusUnauthorized:
		return createdRoom{}, &exitError{Code: exitUnauthorized, Err: fmt.Errorf("chat: create room: %w; the token is missing, invalid or expired: get a new one (chatctl token --user ID, or --user ID here)", apiError(resp.StatusCode, data))}
	case http.StatusNotFound:
		return createdRoom{}, fmt.Errorf("chat: create room: POST %s: %w; is --server a Parley server?", endpoint, apiError(resp.StatusCode, data))
	default:
		return createdRoom{}, fmt.Errorf("chat: create room: %w", apiError(resp.StatusCode, data))
	}
	var r createdRoom
	if err := json.Unmarshal(data, &r); err != nil || r.ID <= 0 {
		return createdRoom{}, fmt.Errorf("chat: create room: POST %s answered 201 without a room id: %.200q", endpoint, data)
	}
	return r, nil
}

// apiError describes a non-success HTTP answer, decoding the API's error
// body ({"error":{"code","message"}}) when it is one.
func apiError(status int, body []byte) error {
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	detail := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &e) == nil && e.Error.Code != "" {
		detail = e.Error.Code + ": " + e.Error.Message
	}
	if r := []rune(detail); len(r) > 200 {
		detail = string(r[:200]) + "…"
	}
	return fmt.Errorf("HTTP %d %s", status, detail)
}

// chatURL is the room's WebSocket URL, with ?after= (and &hash=, when
// known) when resuming.
func chatURL(server *url.URL, roomID, after int64, hash string) string {
	u := *server
	u.Scheme = map[string]string{"http": "ws", "https": "wss"}[u.Scheme]
	u.Path += "/ws/chat/" + strconv.FormatInt(roomID, 10) + "/"
	u.RawQuery = ""
	if after >= 0 {
		q := url.Values{"after": {strconv.FormatInt(after, 10)}}
		if hash != "" {
			q.Set("hash", hash)
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// dialRoom opens the room's WebSocket, authenticated with an
// Authorization header so that the token stays out of the URL.
func dialRoom(ctx context.Context, cfg chatConfig) (*websocket.Conn, error) {
	d := websocket.Dialer{
		Proxy:            http.ProxyFromEnvironment,
		HandshakeTimeout: chatHTTPTimeout,
		Subprotocols:     []string{wsapi.Subprotocol},
	}
	u := chatURL(cfg.server, cfg.roomID, cfg.after, cfg.hash)
	conn, resp, err := d.DialContext(ctx, u, http.Header{"Authorization": {"Bearer " + cfg.token}})
	if err != nil {
		if resp != nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
			resp.Body.Close()
			return nil, fmt.Errorf("chat: connect to %s: the server refused the upgrade: %w", u, apiError(resp.StatusCode, body))
		}
		return nil, fmt.Errorf("chat: connect to %s: %w (is the server running? --server selects another)", u, err)
	}
	conn.SetReadLimit(chatReadLimit)
	return conn, nil
}
