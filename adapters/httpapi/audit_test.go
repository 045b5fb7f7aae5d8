package httpapi_test

import (
	"crypto/rand"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/adapters/httpapi"
	"github.com/parleychat/parley/adapters/inmem"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/chat"
	"github.com/parleychat/parley/domain/room"
)

const (
	carolToken = "secret-carol-auditor-jwt"
	daveToken  = "secret-dave-compliance-jwt"
)

var _ httpapi.RoomAuditor = (*chat.Service)(nil)

// auditFixture serves rooms from a real chat.Service over an in-memory
// store, so audited reads land in the room's stream.
type auditFixture struct {
	*fixture
	svc   *chat.Service
	store *inmem.Store
}

func newAuditFixture(t *testing.T, edit func(*httpapi.Config, *httpapi.Deps)) *auditFixture {
	t.Helper()
	store := inmem.New(nil)
	svc := chat.NewService(chat.Config{}, chat.Deps{Store: store, Now: time.Now, Random: rand.Reader})
	f := newFixture(t, func(cfg *httpapi.Config, d *httpapi.Deps) {
		v := d.Verifier.(fakeVerifier)
		v[carolToken] = domain.Principal{UserID: "carol", Roles: []string{"staff", "auditor"}, ExpiresAt: epoch.Add(time.Hour)}
		v[daveToken] = domain.Principal{UserID: "dave", Roles: []string{"compliance"}, ExpiresAt: epoch.Add(time.Hour)}
		d.Rooms, d.Audit = svc, svc
		if edit != nil {
			edit(cfg, d)
		}
	})
	return &auditFixture{fixture: f, svc: svc, store: store}
}

// audits returns the AuditAccessed events of room id as "user interface".
func (f *auditFixture) audits(t *testing.T, id int64) []string {
	t.Helper()
	evs, err := f.store.ReadStream(t.Context(), room.Stream(id), domain.ReadStreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ev := range evs {
		if ev.Type != room.TypeAuditAccessed {
			continue
		}
		p, err := room.Decode(ev, false)
		if err != nil {
			t.Fatal(err)
		}
		a := p.(room.AuditAccessed)
		out = append(out, a.UserID+" "+a.Interface)
	}
	return out
}

func TestAuditorReadsAnyRoomOverREST(t *testing.T) {
	f := newAuditFixture(t, nil)
	r, err := f.svc.CreateRoom(t.Context(), "alice", "Release notes")
	if err != nil {
		t.Fatal(err)
	}
	id := strconv.FormatInt(r.ID, 10)
	f.pager.msgs[r.ID] = []room.Message{{ID: domain.MustParseUUID("00000000-0000-4000-8000-000000000001"), Role: room.RoleUser, Text: "Hi", Status: room.StatusComplete, CreatedAt: epoch, Version: 1}}

	resp := f.do(t, request{method: "GET", path: "/api/rooms/" + id, token: carolToken})
	if resp.status != http.StatusOK {
		t.Fatalf("auditor GET room: %d %s", resp.status, resp.body)
	}
	got := resp.json(t).(map[string]any)
	if got["owner_id"] != "alice" || got["title"] != "Release notes" || got["version"] != 1.0 {
		t.Errorf("auditor GET room = %v, want alice's room at version 1 (the AuditAccessed event)", got)
	}
	resp = f.do(t, request{method: "GET", path: "/api/rooms/" + id + "/messages", token: carolToken})
	if resp.status != http.StatusOK {
		t.Fatalf("auditor GET messages: %d %s", resp.status, resp.body)
	}
	if msgs := resp.json(t).(map[string]any)["messages"].([]any); len(msgs) != 1 {
		t.Errorf("auditor messages %v", msgs)
	}
	if diff := cmp.Diff([]string{"carol rest", "carol rest"}, f.audits(t, r.ID)); diff != "" {
		t.Errorf("audit events after two reads (-want +got):\n%s", diff)
	}

	// Reads that are not audits, and requests an auditor may not make,
	// record nothing.
	tests := []struct {
		name   string
		req    request
		status int
	}{
		{"owner reads", request{method: "GET", path: "/api/rooms/" + id, token: aliceToken}, 200},
		{"owner pages", request{method: "GET", path: "/api/rooms/" + id + "/messages", token: aliceToken}, 200},
		{"stranger reads", request{method: "GET", path: "/api/rooms/" + id, token: bobToken}, 404},
		{"stranger pages", request{method: "GET", path: "/api/rooms/" + id + "/messages", token: bobToken}, 404},
		{"auditor deletes", request{method: "DELETE", path: "/api/rooms/" + id, token: carolToken}, 404},
		{"auditor asks a ticket", request{method: "POST", path: "/api/rooms/" + id + "/ticket", token: carolToken}, 404},
		{"auditor, bad page", request{method: "GET", path: "/api/rooms/" + id + "/messages?limit=0", token: carolToken}, 400},
		{"auditor, missing room", request{method: "GET", path: "/api/rooms/12345", token: carolToken}, 404},
	}
	for _, tc := range tests {
		if resp := f.do(t, tc.req); resp.status != tc.status {
			t.Errorf("%s: status %d %s, want %d", tc.name, resp.status, resp.body, tc.status)
		}
	}
	if diff := cmp.Diff([]string{"carol rest", "carol rest"}, f.audits(t, r.ID)); diff != "" {
		t.Errorf("audit events after the other requests (-want +got):\n%s", diff)
	}
	if _, err := f.store.ReadStream(t.Context(), room.Stream(12345), domain.ReadStreamOptions{}); err == nil {
		t.Error("an audited read of a missing room created its stream")
	}

	// A deleted room is gone for auditors too.
	if err := f.svc.Delete(t.Context(), r.ID, "alice"); err != nil {
		t.Fatal(err)
	}
	if resp := f.do(t, request{method: "GET", path: "/api/rooms/" + id, token: carolToken}); resp.status != 404 {
		t.Errorf("auditor reads a deleted room: %d, want 404", resp.status)
	}
}

func TestAuditorRoleOverREST(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(*httpapi.Config, *httpapi.Deps)
		token  string
		status int
	}{
		{"default role", nil, carolToken, 200},
		{"another role by default", nil, daveToken, 404},
		{"configured role", func(c *httpapi.Config, _ *httpapi.Deps) { c.AuditorRole = "compliance" }, daveToken, 200},
		{"auditor, but configured otherwise", func(c *httpapi.Config, _ *httpapi.Deps) { c.AuditorRole = "compliance" }, carolToken, 404},
		{"no auditing wired", func(_ *httpapi.Config, d *httpapi.Deps) { d.Audit = nil }, carolToken, 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newAuditFixture(t, tc.edit)
			r, err := f.svc.CreateRoom(t.Context(), "alice", "Release notes")
			if err != nil {
				t.Fatal(err)
			}
			resp := f.do(t, request{method: "GET", path: "/api/rooms/" + strconv.FormatInt(r.ID, 10), token: tc.token})
			if resp.status != tc.status {
				t.Errorf("status %d %s, want %d", resp.status, resp.body, tc.status)
			}
			if n := len(f.audits(t, r.ID)); (n == 1) != (tc.status == 200) || n > 1 {
				t.Errorf("%d audit events, want %d", n, map[bool]int{true: 1}[tc.status == 200])
			}
		})
	}
}
