package wsapi_test

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parleychat/parley/adapters/inmem"
	"github.com/parleychat/parley/adapters/wsapi"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/audit"
	"github.com/parleychat/parley/domain/room"
)

// These tests hold the gateway to docs/protocol.md point by point.

func (e *env) chatURL(id int64, query string) string {
	return e.url + "/ws/chat/" + strconv.FormatInt(id, 10) + "/?" + query
}

// connect dials and reads the first frame.
func connect(t *testing.T, url string) (*websocket.Conn, map[string]any) {
	t.Helper()
	c, _, err := dial(t, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c, read(t, c)
}

// pingPong sends a ping and reads frames up to the pong, returning those
// before it.
func pingPong(t *testing.T, c *websocket.Conn) []map[string]any {
	t.Helper()
	send(t, c, map[string]any{"type": "ping"})
	var before []map[string]any
	for {
		f := read(t, c)
		if f["type"] == "pong" {
			return before
		}
		before = append(before, f)
	}
}

func TestClientFramesAreStrict(t *testing.T) {
	e := newEnv(t, wsapi.Config{MaxViolations: 100})
	id := e.room(t, "42")
	c, h := connect(t, e.chatURL(id, "token=user-42"))
	tests := []struct {
		name  string
		frame string
		want  string // in the error frame's message
	}{
		{"type twice in other cases", `{"type":"ping","Type":"message","message":"stored?"}`, `must be spelt "type"`},
		{"message in another case", `{"Message":"stored?"}`, `must be spelt "message"`},
		{"a key twice", `{"message":"a","message":"b"}`, "appears twice"},
		{"an unknown field", `{"message":"a","colour":"red"}`, `unknown field "colour"`},
		{"client_id not a UUID", `{"message":"a","client_id":"not-a-uuid"}`, "client_id must be a UUID"},
		{"client_id a path", `{"message":"a","client_id":"../../etc/passwd"}`, "client_id must be a UUID"},
		{"client_id huge", `{"message":"a","client_id":"` + strings.Repeat("a", 40000) + `"}`, "client_id must be a UUID"},
		{"client_id bad, message missing", `{"client_id":"0"}`, "client_id must be a UUID"}, // found by FuzzClientFrame
		{"a lone surrogate", `{"message":"a\ud800"}`, "lone surrogate"},
		{"ping with a message", `{"type":"ping","message":"x"}`, `only "type"`},
		{"type not a string", `{"type":5}`, `"type" must be a string`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c.WriteMessage(websocket.TextMessage, []byte(tc.frame))
			f := read(t, c)
			if f["type"] != "error" || f["code"] != "invalid" || !strings.Contains(f["message"].(string), tc.want) {
				t.Errorf("reply %v, want an invalid error saying %q", f, tc.want)
			}
			if _, ok := f["client_id"]; ok && strings.Contains(tc.name, "client_id") {
				t.Errorf("an invalid client_id is echoed: %v", f)
			}
		})
	}
	if got := e.streamTypes(t, id); len(got) != int(h["version"].(float64))+1 {
		t.Errorf("the stream holds %v after refused frames, want nothing appended", got)
	}
}

func TestCancelWithNothingStreamingIsIgnored(t *testing.T) {
	e := newEnv(t, wsapi.Config{MaxViolations: 3})
	id := e.room(t, "42")
	c, _ := connect(t, e.chatURL(id, "token=user-42"))
	for range 5 {
		send(t, c, map[string]any{"type": "cancel"})
	}
	if before := pingPong(t, c); len(before) != 0 {
		t.Errorf("cancels with nothing streaming got %v, want nothing (and no close)", before)
	}
}

func TestExactlyOneCredential(t *testing.T) {
	e := newEnv(t, wsapi.Config{})
	id := e.room(t, "42")
	ticket := "ticket=good-" + strconv.FormatInt(id, 10)
	bearer := http.Header{"Authorization": {"Bearer user-42"}}
	tests := []struct {
		name  string
		query string
		h     http.Header
	}{
		{"header and query token", "token=user-42", bearer},
		{"ticket and header", ticket, bearer},
		{"ticket and query token", ticket + "&token=user-42", nil},
		{"two query tokens", "token=user-42&token=user-42", nil},
		{"a Basic header", "", http.Header{"Authorization": {"Basic dXNlcjpwdw=="}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := e.tickets.redeemed.Load()
			c, _, err := dial(t, e.chatURL(id, tc.query), tc.h)
			if err != nil {
				t.Fatal(err)
			}
			if got := closeCode(t, c); got != wsapi.CloseUnauthorized {
				t.Errorf("close code %d, want 4401", got)
			}
			if strings.HasPrefix(tc.query, "ticket") && e.tickets.redeemed.Load() == before {
				t.Error("the ticket shown beside another credential was not used up")
			}
		})
	}
}

// TestRateLimitedFrameBeforeTheClose: the error frames of the messages
// over the rate arrive before the 4429 close, every time.
func TestRateLimitedFrameBeforeTheClose(t *testing.T) {
	e := newEnv(t, wsapi.Config{MessagesPerMinute: 0.001, MessageBurst: 1, MaxViolations: 2, MaxConnsPerUser: 100})
	for i := range 10 {
		id := e.room(t, "u"+strconv.Itoa(i))
		c, _ := connect(t, e.chatURL(id, "token=user-u"+strconv.Itoa(i)))
		send(t, c, map[string]any{"message": "first"}) // the burst
		send(t, c, map[string]any{"message": "second"})
		send(t, c, map[string]any{"message": "third"})
		var limited int
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			_, data, err := c.ReadMessage()
			if err != nil {
				if ce := (*websocket.CloseError)(nil); !errorsAs(err, &ce) || ce.Code != wsapi.CloseRateLimited {
					t.Fatalf("connection %d ended with %v, want 4429", i, err)
				}
				break
			}
			if strings.Contains(string(data), `"rate_limited"`) {
				limited++
			}
		}
		if limited != 2 {
			t.Fatalf("connection %d: %d rate_limited frames before the 4429 close, want 2", i, limited)
		}
	}
}

// TestDuplicateClientIDTakesNoRateToken: a retried client_id is checked
// before the rate limit, so resending costs nothing.
func TestDuplicateClientIDTakesNoRateToken(t *testing.T) {
	e := newEnv(t, wsapi.Config{MessagesPerMinute: 0.001, MessageBurst: 2})
	id := e.room(t, "42")
	c, _ := connect(t, e.chatURL(id, "token=user-42"))
	send(t, c, map[string]any{"message": "first", "client_id": cid1})
	if f := read(t, c); f["type"] != "message" {
		t.Fatalf("first message: %v", f)
	}
	close(e.gen.gate) // the answer ends
	for f := read(t, c); f["type"] != "answer"; f = read(t, c) {
	}
	for range 3 { // retries after a lost acknowledgement
		send(t, c, map[string]any{"message": "first", "client_id": cid1})
	}
	send(t, c, map[string]any{"message": "second", "client_id": cidBusy})
	if f := read(t, c); f["type"] != "message" || f["client_id"] != cidBusy {
		t.Errorf("the second message after three retries of the first: %v, want it accepted", f)
	}
}

func TestResumeParameters(t *testing.T) {
	e := newEnv(t, wsapi.Config{})
	id := e.room(t, "42")
	for _, q := range []string{"after=-1", "after=+1", "after=01", "after=1.0", "after=", "after=abc",
		"after=9223372036854775807", "after=9007199254740992", "after=0&hash=abc", "after=0&hash=" + strings.Repeat("A", 64),
		"hash=" + strings.Repeat("a", 64)} {
		t.Run(q, func(t *testing.T) {
			_, resp, err := dial(t, e.chatURL(id, "token=user-42&"+q), nil)
			if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
				t.Errorf("dial: %v, %v; want HTTP 400 and no upgrade", err, resp)
			}
		})
	}
}

// TestResumeBeyondTheHead: a position the room never reached gets the
// history, not silence.
func TestResumeBeyondTheHead(t *testing.T) {
	e := newEnv(t, wsapi.Config{})
	id := e.room(t, "42")
	c, f := connect(t, e.chatURL(id, "token=user-42&after=5"))
	if f["type"] != "history" || f["version"] != 0.0 {
		t.Fatalf("first frame after=5 in a room at version 0: %v, want the history", f)
	}
	send(t, c, map[string]any{"message": "live?"})
	if f := read(t, c); f["type"] != "message" {
		t.Errorf("then %v, want the live message frame", f)
	}
}

// chained wraps the env's store in the audit chain, as chatd does.
func chained(m *inmem.Store) domain.EventStore {
	return audit.NewChainingStore(m, audit.ChainOptions{TrustTypes: []string{room.TypeAnswerChunk}})
}

// TestResumeByHash: frames carry their event's chain hash; a resume that
// names it continues, one whose hash the log does not hold at that version
// gets the history.
func TestResumeByHash(t *testing.T) {
	e := startEnv(t, wsapi.Config{}, auth{}, chained)
	id := e.room(t, "42")
	c, h := connect(t, e.chatURL(id, "token=user-42"))
	if hash, _ := h["hash"].(string); !domain.IsChainHash(hash) {
		t.Fatalf("history frame %v has no chain hash", h)
	}
	send(t, c, map[string]any{"message": "q"})
	close(e.gen.gate)
	var frames []map[string]any
	for f := read(t, c); ; f = read(t, c) {
		frames = append(frames, f)
		if f["type"] == "answer" {
			break
		}
	}
	evs, err := e.store.ReadStream(t.Context(), room.Stream(id), domain.ReadStreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	byVersion := map[int64]string{}
	for _, ev := range evs {
		byVersion[ev.Version] = domain.ChainHash(ev.Metadata)
	}
	for _, f := range frames { // chunks through the tap, the rest through the subscription
		if v := int64(f["version"].(float64)); f["hash"] != byVersion[v] {
			t.Errorf("%s frame at version %d has hash %v, want the event's %s", f["type"], v, f["hash"], byVersion[v])
		}
	}
	first := frames[1] // the first chunk
	after := "after=" + strconv.FormatInt(int64(first["version"].(float64)), 10)
	r, _, _ := dial(t, e.chatURL(id, "token=user-42&"+after+"&hash="+first["hash"].(string)), nil)
	if got := pingPong(t, r); len(got) != len(frames)-2 || got[len(got)-1]["type"] != "answer" {
		t.Errorf("resume with the right hash: %v, want the %d frames after the first chunk", got, len(frames)-2)
	}
	wrong := strings.Repeat("0", 64)
	w, f := connect(t, e.chatURL(id, "token=user-42&"+after+"&hash="+wrong))
	if f["type"] != "history" || len(f["messages"].([]any)) != 2 {
		t.Errorf("resume with a hash the log does not hold: %v, want the history", f)
	}
	if got := pingPong(t, w); len(got) != 0 {
		t.Errorf("after that history: %v, want nothing more", got)
	}
}

// TestHistoryIsCapped: the history frame holds the newest messages and
// says where to page for older ones.
func TestHistoryIsCapped(t *testing.T) {
	e := newEnv(t, wsapi.Config{HistoryMessages: 3})
	id := e.room(t, "42")
	close(e.gen.gate)
	var versions []float64
	for i := range 3 {
		res, err := e.svc.Post(t.Context(), id, "42", "question "+strconv.Itoa(i), "")
		if err != nil {
			t.Fatal(err)
		}
		versions = append(versions, float64(res.Version-1)) // the MessagePosted
		for !strings.HasSuffix(strings.Join(e.streamTypes(t, id), ","), room.TypeAnswerCompleted) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	_, h := connect(t, e.chatURL(id, "token=user-42"))
	msgs := h["messages"].([]any)
	if len(msgs) != 3 || msgs[0].(map[string]any)["role"] != "assistant" || msgs[2].(map[string]any)["role"] != "assistant" {
		t.Fatalf("capped history %v, want the newest 3 messages", msgs)
	}
	if nb := h["next_before"]; nb != msgs[0].(map[string]any)["version"] {
		t.Errorf("next_before %v, want the oldest message's version %v", nb, msgs[0].(map[string]any)["version"])
	}
	small := newEnv(t, wsapi.Config{HistoryBytes: 10}) // smaller than any message: the newest only
	sid := small.room(t, "42")
	if _, err := small.svc.Post(t.Context(), sid, "42", "q", ""); err != nil {
		t.Fatal(err)
	}
	if _, h := connect(t, small.chatURL(sid, "token=user-42")); len(h["messages"].([]any)) != 1 || h["next_before"] == nil {
		t.Errorf("history over HistoryBytes: %v, want the newest message alone", h)
	}
	all := newEnv(t, wsapi.Config{})
	aid := all.room(t, "42")
	if _, h := connect(t, all.chatURL(aid, "token=user-42")); h["next_before"] != nil {
		t.Errorf("uncapped history %v, want next_before null", h)
	}
	_ = versions
}

// flakyStore fails reads while down, as a database outage does, and can
// end the log subscription as a store that restarted does.
type flakyStore struct {
	*inmem.Store
	down    atomic.Bool
	restart chan struct{}
}

func (f *flakyStore) ReadStream(ctx context.Context, stream string, opts domain.ReadStreamOptions) ([]domain.RecordedEvent, error) {
	if f.down.Load() {
		return nil, domain.Errorf(domain.EUNAVAILABLE, "the database is down")
	}
	return f.Store.ReadStream(ctx, stream, opts)
}

func (f *flakyStore) Append(ctx context.Context, stream string, exp domain.ExpectedVersion, evs ...domain.EventData) (domain.AppendResult, error) {
	if f.down.Load() {
		return domain.AppendResult{}, domain.Errorf(domain.EUNAVAILABLE, "the database is down")
	}
	return f.Store.Append(ctx, stream, exp, evs...)
}

func (f *flakyStore) SubscribeAll(ctx context.Context, opts domain.SubscribeAllOptions, h domain.Handler) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f.Store.SubscribeAll(sctx, opts, h) }()
	select {
	case err := <-done:
		return err
	case <-f.restart:
		cancel()
		<-done
		return domain.ErrStoreRestarted
	}
}

func TestStoreOutage(t *testing.T) {
	var store *flakyStore
	e := startEnv(t, wsapi.Config{}, auth{}, func(m *inmem.Store) domain.EventStore {
		store = &flakyStore{Store: m, restart: make(chan struct{})}
		return store
	})
	id := e.room(t, "42")
	live, _ := connect(t, e.chatURL(id, "token=user-42"))
	store.down.Store(true)
	c, _, err := dial(t, e.chatURL(id, "token=user-42"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := closeCode(t, c); got != wsapi.CloseUnavailable {
		t.Errorf("connect during the outage: close %d, want %d", got, wsapi.CloseUnavailable)
	}
	send(t, live, map[string]any{"message": "during", "client_id": cid1})
	if f := read(t, live); f["type"] != "error" || f["code"] != "unavailable" || f["client_id"] != cid1 {
		t.Errorf("a message during the outage: %v, want an unavailable error", f)
	}
	store.down.Store(false)
	send(t, live, map[string]any{"message": "after", "client_id": cid1})
	if f := read(t, live); f["type"] != "message" {
		t.Errorf("the message resent after the outage: %v", f)
	}
}

// TestStoreRestartClosesSockets: when the log subscription reports that
// the store restarted, every socket is closed with 1012 (its frames may
// be of events the store lost), and the hub follows the log again.
func TestStoreRestartClosesSockets(t *testing.T) {
	var store *flakyStore
	e := startEnv(t, wsapi.Config{}, auth{}, func(m *inmem.Store) domain.EventStore {
		store = &flakyStore{Store: m, restart: make(chan struct{}, 1)}
		return store
	})
	id := e.room(t, "42")
	c, _ := connect(t, e.chatURL(id, "token=user-42"))
	store.restart <- struct{}{}
	if got := closeCode(t, c); got != wsapi.CloseRestart {
		t.Fatalf("close %d, want %d", got, wsapi.CloseRestart)
	}
	var again *websocket.Conn
	for deadline := time.Now().Add(5 * time.Second); ; {
		again, _ = connect(t, e.chatURL(id, "token=user-42"))
		send(t, again, map[string]any{"message": "still live?"})
		again.SetReadDeadline(time.Now().Add(time.Second))
		if _, data, err := again.ReadMessage(); err == nil && strings.Contains(string(data), `"type":"message"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no live frames after the restart")
		}
	}
}

func errorsAs(err error, target **websocket.CloseError) bool { return errors.As(err, target) }

// TestTokenLeeway: a token the verifier accepted within its leeway, past
// its expiry, keeps its socket until the leeway is over too: REST and the
// socket treat it alike.
func TestTokenLeeway(t *testing.T) {
	e := newEnv(t, wsapi.Config{TokenLeeway: time.Second})
	id := e.room(t, "42")
	c, f := connect(t, e.chatURL(id, "token=late-42"))
	if f["type"] != "history" {
		t.Fatalf("first frame %v, want the history", f)
	}
	start := time.Now()
	if got := closeCode(t, c); got != wsapi.CloseUnauthorized {
		t.Fatalf("close %d, want 4401", got)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("closed %v after connecting, want about 600ms: the socket must have the verifier's leeway", d)
	}
}
