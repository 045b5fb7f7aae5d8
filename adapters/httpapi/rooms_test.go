package httpapi_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/adapters/httpapi"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
)

func TestCreateRoom(t *testing.T) {
	f := newFixture(t, nil)
	resp := f.do(t, request{method: "POST", path: "/api/rooms", token: aliceToken, body: `{"title":"  Release notes "}`})
	if resp.status != http.StatusCreated {
		t.Fatalf("status %d, body %s; want 201", resp.status, resp.body)
	}
	want := map[string]any{"id": 42.0, "title": "Release notes", "owner_id": "alice", "created_at": "2025-11-24T20:47:03.512Z", "version": 0.0}
	if diff := cmp.Diff(want, resp.json(t)); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
	if got := resp.header.Get("Location"); got != "/api/rooms/42" {
		t.Errorf("Location = %q, want /api/rooms/42", got)
	}
	if got := resp.header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q", got)
	}
	if got := resp.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
}

func TestCreateRoomRefusals(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		header     map[string]string
		wantStatus int
		wantCode   string
	}{
		{"empty title", `{"title":"   "}`, nil, 400, domain.EINVALID},
		{"missing title", `{}`, nil, 400, domain.EINVALID},
		{"title too long", `{"title":"` + strings.Repeat("é", room.MaxTitleRunes+1) + `"}`, nil, 400, domain.EINVALID},
		{"unknown field", `{"title":"x","colour":"red"}`, nil, 400, domain.EINVALID},
		{"title not a string", `{"title":7}`, nil, 400, domain.EINVALID},
		{"array", `[{"title":"x"}]`, nil, 400, domain.EINVALID},
		{"null", `null`, nil, 400, domain.EINVALID},
		{"malformed", `{"title":`, nil, 400, domain.EINVALID},
		{"two objects", `{"title":"a"}{"title":"b"}`, nil, 400, domain.EINVALID},
		{"key in another case", `{"Title":"x"}`, nil, 400, domain.EINVALID},
		{"key twice", `{"title":"a","title":"b"}`, nil, 400, domain.EINVALID},
		{"title not valid UTF-8", "{\"title\":\"caf\xe9\"}", nil, 400, domain.EINVALID},
		{"title with a lone surrogate", `{"title":"a\ud800"}`, nil, 400, domain.EINVALID},
		{"form content type", `{"title":"x"}`, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 400, domain.EINVALID},
		{"over the body limit", `{"title":"` + strings.Repeat("a", httpapi.DefaultMaxBodyBytes) + `"}`, nil, 413, domain.ETOOLARGE},
	}
	f := newFixture(t, nil)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := f.do(t, request{method: "POST", path: "/api/rooms", token: aliceToken, body: tc.body, header: tc.header})
			if resp.status != tc.wantStatus {
				t.Errorf("status %d, body %s; want %d", resp.status, resp.body, tc.wantStatus)
			}
			if code := resp.errorCode(t); code != tc.wantCode {
				t.Errorf("code %q, want %q", code, tc.wantCode)
			}
		})
	}
	if n := len(f.rooms.rooms); n != 0 {
		t.Errorf("%d rooms created by refused requests", n)
	}
}

func TestMaxBodyBytesConfig(t *testing.T) {
	f := newFixture(t, func(c *httpapi.Config, _ *httpapi.Deps) { c.MaxBodyBytes = 16 })
	if resp := f.do(t, request{method: "POST", path: "/api/rooms", token: aliceToken, body: `{"title":"abcd"}`}); resp.status != 201 {
		t.Errorf("16-byte body: status %d, want 201", resp.status)
	}
	resp := f.do(t, request{method: "POST", path: "/api/rooms", token: aliceToken, body: `{"title":"abcde"}`})
	if resp.status != 413 || resp.errorCode(t) != domain.ETOOLARGE {
		t.Errorf("17-byte body: status %d, body %s; want 413 too_large", resp.status, resp.body)
	}
}

// TestErrorStatuses: each domain code maps to its status, and the message
// reaches the client except for internal errors.
func TestErrorStatuses(t *testing.T) {
	tests := []struct {
		err        error
		wantStatus int
		wantCode   string
		wantMsg    string
	}{
		{domain.Errorf(domain.EINVALID, "bad"), 400, "invalid", "bad"},
		{domain.Errorf(domain.EUNAUTHORIZED, "who"), 401, "unauthorized", "who"},
		{domain.Errorf(domain.EFORBIDDEN, "no"), 403, "forbidden", "no"},
		{domain.Errorf(domain.ENOTFOUND, "gone"), 404, "not_found", "gone"},
		{domain.Errorf(domain.ECONFLICT, "raced"), 409, "conflict", "raced"},
		{domain.Errorf(domain.ETOOLARGE, "big"), 413, "too_large", "big"},
		{domain.Errorf(domain.ERATELIMITED, "slow down"), 429, "rate_limited", "slow down"},
		{domain.Errorf(domain.EBUSY, "busy now"), 409, "busy", "busy now"},
		{fmt.Errorf("append: %w", domain.Errorf(domain.EUNAVAILABLE, "event store unavailable")), 503, "unavailable", "event store unavailable"},
		{errors.New("dial tcp 10.0.0.7:5432: secret detail"), 500, "internal", "internal error"},
		// The store's typed errors name streams and versions: a client gets
		// their code's generic text, never "append to room-…".
		{fmt.Errorf("create room: %w", &domain.InvalidEventError{Stream: "room-7", Index: 0, Field: "data", Reason: "it contains a NUL character"}), 400, "invalid", "invalid input"},
		{fmt.Errorf("room 7: %w", &domain.ConflictError{Stream: "room-7", Expected: domain.Exact(1), Actual: 2}), 409, "conflict", "a concurrent change came first; try again"},
	}
	for _, tc := range tests {
		t.Run(tc.wantCode, func(t *testing.T) {
			f := newFixture(t, nil)
			f.rooms.err = tc.err
			resp := f.do(t, request{method: "POST", path: "/api/rooms", token: aliceToken, body: `{"title":"x"}`})
			want := map[string]any{"error": map[string]any{"code": tc.wantCode, "message": tc.wantMsg}}
			if diff := cmp.Diff(want, resp.json(t)); diff != "" || resp.status != tc.wantStatus {
				t.Errorf("status %d, want %d; body (-want +got):\n%s", resp.status, tc.wantStatus, diff)
			}
			// The error is logged once, in the access line, with its detail.
			lines := f.closeAndLogs(t)
			if len(lines) != 1 || lines[0]["error"] != tc.err.Error() {
				t.Errorf("log lines %v, want one access line with error %q", lines, tc.err)
			}
		})
	}
}

func TestListRooms(t *testing.T) {
	f := newFixture(t, nil)
	f.lister.rooms["alice"] = []httpapi.RoomSummary{
		{ID: 43, OwnerID: "alice", Title: "Onboarding", CreatedAt: epoch.Add(3600e9), Version: 12},
		{ID: 42, OwnerID: "alice", Title: "Release notes", CreatedAt: epoch, Version: 7},
	}
	resp := f.do(t, request{method: "GET", path: "/api/rooms", token: aliceToken})
	want := map[string]any{"rooms": []any{
		map[string]any{"id": 43.0, "title": "Onboarding", "owner_id": "alice", "created_at": "2025-11-24T21:47:03.512Z", "version": 12.0},
		map[string]any{"id": 42.0, "title": "Release notes", "owner_id": "alice", "created_at": "2025-11-24T20:47:03.512Z", "version": 7.0},
	}}
	if diff := cmp.Diff(want, resp.json(t)); diff != "" || resp.status != 200 {
		t.Errorf("status %d; body (-want +got):\n%s", resp.status, diff)
	}
	// Bob has none: an empty array, not null.
	resp = f.do(t, request{method: "GET", path: "/api/rooms", token: bobToken})
	if diff := cmp.Diff(map[string]any{"rooms": []any{}}, resp.json(t)); diff != "" {
		t.Errorf("empty list (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int{httpapi.DefaultMaxRooms, httpapi.DefaultMaxRooms}, f.lister.limits); diff != "" {
		t.Errorf("limits asked for (-want +got):\n%s", diff)
	}
	f.lister.err = domain.Errorf(domain.EUNAVAILABLE, "read model unavailable")
	if resp := f.do(t, request{method: "GET", path: "/api/rooms", token: aliceToken}); resp.status != 503 || resp.errorCode(t) != "unavailable" {
		t.Errorf("lister failing: status %d, body %s; want 503 unavailable", resp.status, resp.body)
	}
}

func TestGetRoom(t *testing.T) {
	f := newFixture(t, nil)
	mine := f.rooms.add("alice", "Release notes")
	bobs := f.rooms.add("bob", "Bob's")
	gone := f.rooms.add("alice", "Deleted")
	f.rooms.deleted[gone] = true

	resp := f.do(t, request{method: "GET", path: fmt.Sprint("/api/rooms/", mine), token: aliceToken})
	want := map[string]any{"id": float64(mine), "title": "Release notes", "owner_id": "alice", "created_at": "2025-11-24T20:47:03.512Z", "version": 3.0}
	if diff := cmp.Diff(want, resp.json(t)); diff != "" || resp.status != 200 {
		t.Errorf("own room: status %d; body (-want +got):\n%s", resp.status, diff)
	}
	// Someone else's, deleted, missing and malformed ids: all one 404.
	for _, path := range []string{
		fmt.Sprint("/api/rooms/", bobs), fmt.Sprint("/api/rooms/", gone), "/api/rooms/999",
		"/api/rooms/abc", "/api/rooms/0", "/api/rooms/-1", fmt.Sprint("/api/rooms/0", mine), fmt.Sprint("/api/rooms/+", mine),
		"/api/rooms/99999999999999999999",
	} {
		resp := f.do(t, request{method: "GET", path: path, token: aliceToken})
		if resp.status != 404 || resp.errorCode(t) != "not_found" {
			t.Errorf("GET %s: status %d, body %s; want 404 not_found", path, resp.status, resp.body)
		}
		if path == fmt.Sprint("/api/rooms/", bobs) && !strings.Contains(string(resp.body), "room not found") {
			t.Errorf("foreign room answered %s, want the same text as a missing room", resp.body)
		}
	}
	f.rooms.err = domain.Errorf(domain.EUNAVAILABLE, "event store unavailable")
	if resp := f.do(t, request{method: "GET", path: fmt.Sprint("/api/rooms/", mine), token: aliceToken}); resp.status != 503 {
		t.Errorf("store down: status %d, want 503", resp.status)
	}
}

func TestDeleteRoom(t *testing.T) {
	f := newFixture(t, nil)
	mine := f.rooms.add("alice", "Mine")
	bobs := f.rooms.add("bob", "Bob's")
	tests := []struct {
		name  string
		token string
		id    int64
		want  int
	}{
		{"stranger", aliceToken, bobs, 404},
		{"missing", aliceToken, 999, 404},
		{"owner", aliceToken, mine, 204},
		{"again", aliceToken, mine, 404},
	}
	for _, tc := range tests {
		resp := f.do(t, request{method: "DELETE", path: fmt.Sprint("/api/rooms/", tc.id), token: tc.token})
		if resp.status != tc.want {
			t.Errorf("%s: status %d, body %s; want %d", tc.name, resp.status, resp.body, tc.want)
		}
		if tc.want == 204 && len(resp.body) != 0 {
			t.Errorf("%s: 204 with a body %q", tc.name, resp.body)
		}
		if tc.want == 404 && resp.errorCode(t) != "not_found" {
			t.Errorf("%s: code is not not_found", tc.name)
		}
	}
	if f.rooms.deleted[bobs] {
		t.Error("alice deleted bob's room")
	}
	if resp := f.do(t, request{method: "GET", path: fmt.Sprint("/api/rooms/", mine), token: aliceToken}); resp.status != 404 {
		t.Errorf("GET after DELETE: status %d, want 404", resp.status)
	}
}

// conversation is room 42's messages, oldest first, with the versions a
// room stream gives them: user 1, answer 2-5, user 6, answer 7 (cancelled).
func conversation() []room.Message {
	id := func(n int) domain.UUID { return domain.MustParseUUID(fmt.Sprintf("00000000-0000-4000-8000-%012d", n)) }
	return []room.Message{
		{ID: id(1), Role: room.RoleUser, Text: "What changed?", Status: room.StatusComplete, CreatedAt: epoch, Version: 1},
		{ID: id(2), Role: room.RoleAssistant, Text: "Tickets.", Status: room.StatusComplete, CreatedAt: epoch, Version: 5,
			Sources: []room.Source{{Document: "CHANGELOG.md", ChunkID: "c3", Score: 0.82, Snippet: "2.0: tickets"}}},
		{ID: id(3), Role: room.RoleUser, Text: "And in 1.9?", Status: room.StatusComplete, CreatedAt: epoch, Version: 6},
		{ID: id(4), Role: room.RoleAssistant, Text: "", Status: room.StatusCancelled, CreatedAt: epoch, Version: 7},
	}
}

func TestListMessages(t *testing.T) {
	f := newFixture(t, nil)
	mine := f.rooms.add("alice", "Mine")
	f.pager.msgs[mine] = conversation()

	resp := f.do(t, request{method: "GET", path: fmt.Sprintf("/api/rooms/%d/messages?limit=3", mine), token: aliceToken})
	want := map[string]any{
		"messages": []any{
			map[string]any{"id": "00000000-0000-4000-8000-000000000004", "role": "assistant", "message": "", "status": "cancelled",
				"sources": []any{}, "created_at": "2025-11-24T20:47:03.512Z", "version": 7.0},
			map[string]any{"id": "00000000-0000-4000-8000-000000000003", "role": "user", "message": "And in 1.9?", "status": "complete",
				"sources": []any{}, "created_at": "2025-11-24T20:47:03.512Z", "version": 6.0},
			map[string]any{"id": "00000000-0000-4000-8000-000000000002", "role": "assistant", "message": "Tickets.", "status": "complete",
				"sources":    []any{map[string]any{"document": "CHANGELOG.md", "chunk_id": "c3", "score": 0.82, "snippet": "2.0: tickets"}},
				"created_at": "2025-11-24T20:47:03.512Z", "version": 5.0},
		},
		"next_before": 5.0,
	}
	if diff := cmp.Diff(want, resp.json(t)); diff != "" || resp.status != 200 {
		t.Errorf("status %d; body (-want +got):\n%s", resp.status, diff)
	}
}

func TestListMessagesPaging(t *testing.T) {
	f := newFixture(t, nil)
	mine := f.rooms.add("alice", "Mine")
	f.pager.msgs[mine] = conversation()
	tests := []struct {
		query       string
		wantIDs     []int64 // versions of the messages, in order
		wantNext    any
		wantDefault bool
	}{
		{query: "", wantIDs: []int64{7, 6, 5, 1}, wantNext: nil},
		{query: "?limit=2", wantIDs: []int64{7, 6}, wantNext: 6.0},
		{query: "?before=6&limit=2", wantIDs: []int64{5, 1}, wantNext: nil},
		{query: "?before=5&limit=1", wantIDs: []int64{1}, wantNext: nil},
		{query: "?before=7&limit=1", wantIDs: []int64{6}, wantNext: 6.0},
		{query: "?before=0", wantIDs: []int64{}, wantNext: nil},
		{query: "?limit=4", wantIDs: []int64{7, 6, 5, 1}, wantNext: nil},
		{query: "?limit=200", wantIDs: []int64{7, 6, 5, 1}, wantNext: nil},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			resp := f.do(t, request{method: "GET", path: fmt.Sprintf("/api/rooms/%d/messages%s", mine, tc.query), token: aliceToken})
			if resp.status != 200 {
				t.Fatalf("status %d, body %s", resp.status, resp.body)
			}
			page := resp.json(t).(map[string]any)
			got := []int64{}
			for _, m := range page["messages"].([]any) {
				got = append(got, int64(m.(map[string]any)["version"].(float64)))
			}
			if diff := cmp.Diff(tc.wantIDs, got); diff != "" {
				t.Errorf("versions (-want +got):\n%s", diff)
			}
			next, ok := page["next_before"]
			if !ok || next != tc.wantNext {
				t.Errorf("next_before = %v (present %v), want %v", next, ok, tc.wantNext)
			}
		})
	}
}

func TestListMessagesRefusals(t *testing.T) {
	f := newFixture(t, nil)
	mine := f.rooms.add("alice", "Mine")
	bobs := f.rooms.add("bob", "Bob's")
	tests := []struct {
		path       string
		wantStatus int
		wantCode   string
	}{
		{fmt.Sprintf("/api/rooms/%d/messages?before=-1", mine), 400, "invalid"},
		{fmt.Sprintf("/api/rooms/%d/messages?before=x", mine), 400, "invalid"},
		{fmt.Sprintf("/api/rooms/%d/messages?limit=0", mine), 400, "invalid"},
		{fmt.Sprintf("/api/rooms/%d/messages?limit=201", mine), 400, "invalid"},
		{fmt.Sprintf("/api/rooms/%d/messages?limit=ten", mine), 400, "invalid"},
		{fmt.Sprintf("/api/rooms/%d/messages", bobs), 404, "not_found"},
		{"/api/rooms/999/messages", 404, "not_found"},
		{"/api/rooms/x/messages", 404, "not_found"},
	}
	for _, tc := range tests {
		resp := f.do(t, request{method: "GET", path: tc.path, token: aliceToken})
		if resp.status != tc.wantStatus || resp.errorCode(t) != tc.wantCode {
			t.Errorf("GET %s: status %d, body %s; want %d %s", tc.path, resp.status, resp.body, tc.wantStatus, tc.wantCode)
		}
	}
	if f.pager.calls != 0 {
		t.Errorf("the pager was asked %d times for refused requests", f.pager.calls)
	}
	f.pager.err = errors.New("read model exploded")
	if resp := f.do(t, request{method: "GET", path: fmt.Sprintf("/api/rooms/%d/messages", mine), token: aliceToken}); resp.status != 500 {
		t.Errorf("pager failing: status %d, want 500", resp.status)
	}
}

func TestCreateTicket(t *testing.T) {
	f := newFixture(t, nil)
	mine := f.rooms.add("alice", "Mine")
	bobs := f.rooms.add("bob", "Bob's")

	resp := f.do(t, request{method: "POST", path: fmt.Sprintf("/api/rooms/%d/ticket", mine), token: aliceToken})
	want := map[string]any{"ticket": "ticket-alice", "expires_at": "2025-11-24T20:47:33.512Z"}
	if diff := cmp.Diff(want, resp.json(t)); diff != "" || resp.status != 201 {
		t.Errorf("status %d; body (-want +got):\n%s", resp.status, diff)
	}
	if got := resp.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
	// The issuer gets the whole principal: the ticket's connection lives as
	// long as the token.
	wantIssued := []domain.Principal{{UserID: "alice", Roles: []string{"user"}, ExpiresAt: epoch.Add(3600e9)}}
	if diff := cmp.Diff(wantIssued, f.tickets.issued); diff != "" {
		t.Errorf("issued to (-want +got):\n%s", diff)
	}

	for _, path := range []string{fmt.Sprintf("/api/rooms/%d/ticket", bobs), "/api/rooms/999/ticket", "/api/rooms/abc/ticket"} {
		resp := f.do(t, request{method: "POST", path: path, token: aliceToken})
		if resp.status != 404 || resp.errorCode(t) != "not_found" {
			t.Errorf("POST %s: status %d, body %s; want 404", path, resp.status, resp.body)
		}
	}
	if len(f.tickets.issued) != 1 {
		t.Errorf("%d tickets issued, want only alice's for her own room", len(f.tickets.issued))
	}
	f.tickets.err = domain.Errorf(domain.EUNAVAILABLE, "database unavailable")
	if resp := f.do(t, request{method: "POST", path: fmt.Sprintf("/api/rooms/%d/ticket", mine), token: aliceToken}); resp.status != 503 {
		t.Errorf("issuer failing: status %d, want 503", resp.status)
	}
}

// TestAuthentication: every /api route wants a bearer token the verifier
// accepts, and says so with 401 and WWW-Authenticate.
func TestAuthentication(t *testing.T) {
	f := newFixture(t, nil)
	mine := f.rooms.add("alice", "Mine")
	routes := []struct{ method, path, body string }{
		{"POST", "/api/rooms", `{"title":"x"}`},
		{"GET", "/api/rooms", ""},
		{"GET", fmt.Sprint("/api/rooms/", mine), ""},
		{"DELETE", fmt.Sprint("/api/rooms/", mine), ""},
		{"GET", fmt.Sprintf("/api/rooms/%d/messages", mine), ""},
		{"POST", fmt.Sprintf("/api/rooms/%d/ticket", mine), ""},
	}
	credentials := []struct {
		name          string
		authorization string
		wantChallenge string
	}{
		{"none", "", "Bearer"},
		{"basic", "Basic YWxpY2U6cHc=", "Bearer"},
		{"empty bearer", "Bearer ", "Bearer"},
		{"bad token", "Bearer secret-forged", `Bearer error="invalid_token"`},
		{"token without prefix", aliceToken, "Bearer"},
	}
	for _, rt := range routes {
		for _, c := range credentials {
			t.Run(rt.method+" "+rt.path+" "+c.name, func(t *testing.T) {
				h := map[string]string{}
				if c.authorization != "" {
					h["Authorization"] = c.authorization
				}
				resp := f.do(t, request{method: rt.method, path: rt.path, body: rt.body, header: h})
				if resp.status != 401 || resp.errorCode(t) != "unauthorized" {
					t.Errorf("status %d, body %s; want 401 unauthorized", resp.status, resp.body)
				}
				if got := resp.header.Get("WWW-Authenticate"); got != c.wantChallenge {
					t.Errorf("WWW-Authenticate = %q, want %q", got, c.wantChallenge)
				}
			})
		}
	}
	if f.rooms.deleted[mine] || len(f.rooms.rooms) != 1 || len(f.tickets.issued) != 0 {
		t.Error("an unauthenticated request changed something")
	}
	// The scheme is case-insensitive.
	if resp := f.do(t, request{method: "GET", path: "/api/rooms", header: map[string]string{"Authorization": "bearer " + aliceToken}}); resp.status != 200 {
		t.Errorf("lower-case scheme: status %d, want 200", resp.status)
	}
}
