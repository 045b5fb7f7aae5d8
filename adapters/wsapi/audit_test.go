package wsapi_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/adapters/wsapi"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
)

// roleAuth accepts "user-<id>" tokens without roles and "<role>-<id>"
// tokens for the roles auditor and compliance.
type roleAuth struct{}

func (roleAuth) Verify(_ context.Context, token string) (domain.Principal, error) {
	role, id, ok := strings.Cut(token, "-")
	if !ok {
		return domain.Principal{}, domain.Errorf(domain.EUNAUTHORIZED, "bad token")
	}
	p := domain.Principal{UserID: id, ExpiresAt: time.Now().Add(time.Hour)}
	switch role {
	case "user":
	case "auditor", "compliance":
		p.Roles = []string{"reader", role}
	default:
		return domain.Principal{}, domain.Errorf(domain.EUNAUTHORIZED, "bad token")
	}
	return p, nil
}

func newAuditEnv(t *testing.T, cfg wsapi.Config) *env { return startEnv(t, cfg, roleAuth{}, nil) }

// streamTypes returns the types of room id's events.
func (e *env) streamTypes(t *testing.T, id int64) []string {
	t.Helper()
	evs, err := e.store.ReadStream(t.Context(), room.Stream(id), domain.ReadStreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.Type
	}
	return out
}

func TestAuditCloseCodes(t *testing.T) {
	e := newAuditEnv(t, wsapi.Config{})
	id := e.room(t, "42")
	url := e.url + "/ws/audit/" + strconv.FormatInt(id, 10) + "/"
	tests := []struct {
		name string
		url  string
		code int
	}{
		{"missing token", url, wsapi.CloseUnauthorized},
		{"invalid token", url + "?token=nope", wsapi.CloseUnauthorized},
		{"not an auditor", url + "?token=user-7", wsapi.CloseForbidden},
		{"the owner, not an auditor", url + "?token=user-42", wsapi.CloseForbidden},
		{"another role", url + "?token=compliance-7", wsapi.CloseForbidden},
		{"no such room", e.url + "/ws/audit/999/?token=auditor-7", wsapi.CloseForbidden},
		{"ticket", url + "?ticket=good-" + strconv.FormatInt(id, 10), wsapi.CloseUnauthorized},
		{"ticket and token", url + "?token=auditor-7&ticket=good-" + strconv.FormatInt(id, 10), wsapi.CloseUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := dial(t, tc.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := closeCode(t, c); got != tc.code {
				t.Errorf("close code %d, want %d", got, tc.code)
			}
		})
	}
	// A refused ticket is not spent: tickets are single-use, and the owner
	// may still need it for the chat socket.
	if got := e.tickets.redeemed.Load(); got != 0 {
		t.Errorf("audit sockets redeemed %d tickets, want 0", got)
	}
	// Refused sockets recorded nothing, and created no stream.
	if diff := cmp.Diff([]string{room.TypeRoomCreated}, e.streamTypes(t, id)); diff != "" {
		t.Errorf("stream after refused audits (-want +got):\n%s", diff)
	}
	if _, err := e.store.ReadStream(t.Context(), room.Stream(999), domain.ReadStreamOptions{}); err == nil {
		t.Error("an audit of a missing room created its stream")
	}
}

func TestAuditorRoleIsConfigurable(t *testing.T) {
	e := newAuditEnv(t, wsapi.Config{AuditorRole: "compliance"})
	url := e.url + "/ws/audit/" + strconv.FormatInt(e.room(t, "42"), 10) + "/"
	c, _, _ := dial(t, url+"?token=auditor-7", nil)
	if got := closeCode(t, c); got != wsapi.CloseForbidden {
		t.Errorf("auditor role with AuditorRole=compliance: close code %d, want 4403", got)
	}
	c, _, _ = dial(t, url+"?token=compliance-7", nil)
	if f := read(t, c); f["type"] != "history" {
		t.Errorf("compliance role: first frame %v, want history", f)
	}
}

func TestAuditTransports(t *testing.T) {
	e := newAuditEnv(t, wsapi.Config{})
	url := e.url + "/ws/audit/" + strconv.FormatInt(e.room(t, "42"), 10) + "/"
	for name, h := range map[string]http.Header{
		"bearer header": {"Authorization": {"Bearer auditor-7"}},
		"subprotocol":   {"X-Subprotocols": {wsapi.Subprotocol, "bearer." + base64.RawURLEncoding.EncodeToString([]byte("auditor-7"))}},
	} {
		t.Run(name, func(t *testing.T) {
			c, _, err := dial(t, url, h)
			if err != nil {
				t.Fatal(err)
			}
			if f := read(t, c); f["type"] != "history" {
				t.Errorf("first frame %v, want history", f)
			}
		})
	}
}

// TestAuditIsReadOnly: an auditor sees the history and the room live, is
// refused anything but ping, posts nothing, and its access is in the
// stream as AuditAccessed, which the owner's socket never sees.
func TestAuditIsReadOnly(t *testing.T) {
	e := newAuditEnv(t, wsapi.Config{MaxViolations: 10})
	id := e.room(t, "42")
	sid := strconv.FormatInt(id, 10)
	owner, _, _ := dial(t, e.url+"/ws/chat/"+sid+"/?token=user-42", nil)
	read(t, owner) // history
	send(t, owner, map[string]any{"message": "How much?"})
	read(t, owner) // message
	for range 4 {  // one delta at a time, each a chunk of its own
		e.gen.gate <- struct{}{}
		read(t, owner)
	}
	read(t, owner) // the answer

	a, _, _ := dial(t, e.url+"/ws/audit/"+sid+"/?token=auditor-7", nil)
	hist := read(t, a)
	msgs, _ := hist["messages"].([]any)
	if hist["type"] != "history" || len(msgs) != 2 || msgs[1].(map[string]any)["message"] != "Up to 200,000 won." {
		t.Fatalf("auditor's history %v", hist)
	}
	wantStream := []string{room.TypeRoomCreated, room.TypeMessagePosted, room.TypeAnswerStarted}
	for _, ev := range e.streamTypes(t, id)[3:] {
		if ev == room.TypeAnswerChunk {
			wantStream = append(wantStream, ev) // chunks batch differently run to run
		}
	}
	wantStream = append(wantStream, room.TypeAnswerCompleted, room.TypeAuditAccessed)
	if diff := cmp.Diff(wantStream, e.streamTypes(t, id)); diff != "" {
		t.Fatalf("stream after the audit connect (-want +got):\n%s", diff)
	}
	if hist["version"] != float64(len(wantStream)-1) {
		t.Errorf("history version %v, want %d (the AuditAccessed event)", hist["version"], len(wantStream)-1)
	}
	evs, _ := e.store.ReadStream(t.Context(), room.Stream(id), domain.ReadStreamOptions{From: int64(len(wantStream) - 1)})
	p, err := room.Decode(evs[0], false)
	if err != nil {
		t.Fatal(err)
	}
	if a := p.(room.AuditAccessed); a.UserID != "7" || a.Interface != room.InterfaceWebSocket {
		t.Errorf("recorded %+v, want user 7 over websocket", a)
	}

	for _, f := range []map[string]any{
		{"type": "message", "message": "Let me in", "client_id": "x"},
		{"message": "no type"},
		{"type": "cancel"},
		{"type": "dance"},
	} {
		send(t, a, f)
		if got := read(t, a); got["type"] != "error" || got["code"] != "forbidden" {
			t.Errorf("after %v: %v, want a forbidden error frame", f, got)
		}
	}
	send(t, a, map[string]any{"type": "ping"})
	if got := read(t, a); got["type"] != "pong" {
		t.Errorf("ping: %v, want pong", got)
	}
	if diff := cmp.Diff(wantStream, e.streamTypes(t, id)); diff != "" {
		t.Errorf("the auditor's frames wrote to the stream (-want +got):\n%s", diff)
	}
	// The owner's socket saw nothing of the audit: its next frame is the pong.
	send(t, owner, map[string]any{"type": "ping"})
	if got := read(t, owner); got["type"] != "pong" {
		t.Errorf("owner's next frame %v, want the pong (AuditAccessed is never sent)", got)
	}

	// Live: the owner's next question reaches the auditor.
	send(t, owner, map[string]any{"message": "And jobs?"})
	if got := read(t, a); got["type"] != "message" || got["message"] != "And jobs?" {
		t.Errorf("auditor's live frame %v, want the owner's message", got)
	}
}

func TestAuditViolationsClose(t *testing.T) {
	e := newAuditEnv(t, wsapi.Config{MaxViolations: 2})
	a, _, _ := dial(t, e.url+"/ws/audit/"+strconv.FormatInt(e.room(t, "42"), 10)+"/?token=auditor-7", nil)
	read(t, a)
	send(t, a, map[string]any{"message": "one"})
	read(t, a)
	send(t, a, map[string]any{"message": "two"})
	if got := closeCode(t, a); got != 1008 {
		t.Errorf("close code %d, want 1008 after repeated refused frames", got)
	}
}
