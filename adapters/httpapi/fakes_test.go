package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/adapters/httpapi"
	"github.com/parleychat/parley/docs"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/chat"
	"github.com/parleychat/parley/domain/domaintest"
	"github.com/parleychat/parley/domain/room"
)

// Tokens the fake verifier accepts. They contain "secret" so that the log
// tests can look for any of them.
const (
	aliceToken = "secret-alice-jwt"
	bobToken   = "secret-bob-jwt"
)

var epoch = time.Date(2025, 11, 24, 20, 47, 3, 512_000_000, time.UTC)

// fakeVerifier accepts the tokens in its map.
type fakeVerifier map[string]domain.Principal

func (v fakeVerifier) Verify(_ context.Context, token string) (domain.Principal, error) {
	p, ok := v[token]
	if !ok {
		return domain.Principal{}, domain.Errorf(domain.EUNAUTHORIZED, "signature invalid")
	}
	return p, nil
}

// fakeRooms keeps rooms in a map, deciding like chat.Service: titles are
// validated by the domain, strangers get room.ErrForbidden, missing and
// deleted rooms room.ErrNotFound. err, when set, fails every call.
type fakeRooms struct {
	mu      sync.Mutex
	rooms   map[int64]*chat.RoomInfo
	deleted map[int64]bool
	nextID  int64
	err     error
	panics  bool
}

func newFakeRooms() *fakeRooms {
	return &fakeRooms{rooms: map[int64]*chat.RoomInfo{}, deleted: map[int64]bool{}, nextID: 42}
}

// add puts a room of owner in place and returns its id.
func (f *fakeRooms) add(owner, title string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := f.nextID
	f.nextID++
	f.rooms[id] = &chat.RoomInfo{ID: id, Owner: owner, Title: title, CreatedAt: epoch, Version: 3}
	return id
}

func (f *fakeRooms) CreateRoom(_ context.Context, owner, title string) (chat.RoomInfo, error) {
	if f.panics {
		panic("fake rooms: boom")
	}
	if f.err != nil {
		return chat.RoomInfo{}, f.err
	}
	t, err := room.ValidateTitle(title)
	if err != nil {
		return chat.RoomInfo{}, err
	}
	id := f.add(owner, t)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rooms[id].Version = 0
	return *f.rooms[id], nil
}

func (f *fakeRooms) lookup(id int64, user string) (*chat.RoomInfo, error) {
	if f.err != nil {
		return nil, f.err
	}
	ri, ok := f.rooms[id]
	if !ok || f.deleted[id] {
		return nil, room.ErrNotFound
	}
	if ri.Owner != user {
		return nil, room.ErrForbidden
	}
	return ri, nil
}

func (f *fakeRooms) Room(_ context.Context, id int64, user string) (chat.RoomInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ri, err := f.lookup(id, user)
	if err != nil {
		return chat.RoomInfo{}, err
	}
	return *ri, nil
}

func (f *fakeRooms) Delete(_ context.Context, id int64, user string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.lookup(id, user); err != nil {
		return err
	}
	f.deleted[id] = true
	return nil
}

// fakeLister returns rooms and records what it was asked.
type fakeLister struct {
	mu     sync.Mutex
	rooms  map[string][]httpapi.RoomSummary
	err    error
	limits []int
}

func (f *fakeLister) RoomsOf(_ context.Context, owner string, limit int) ([]httpapi.RoomSummary, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.limits = append(f.limits, limit)
	if f.err != nil {
		return nil, f.err
	}
	rs := f.rooms[owner]
	return rs[:min(limit, len(rs))], nil
}

// fakePager pages through msgs (oldest first) by Version, as the
// MessagePager contract says; like the ChatLog, it reads a before of zero
// or less as "the newest".
type fakePager struct {
	mu    sync.Mutex
	msgs  map[int64][]room.Message
	err   error
	calls int
}

func (f *fakePager) Messages(_ context.Context, roomID, before int64, limit int) ([]room.Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	if before <= 0 {
		before = math.MaxInt64
	}
	var out []room.Message
	all := f.msgs[roomID]
	for i := len(all) - 1; i >= 0 && len(out) < limit; i-- {
		if all[i].Version < before {
			out = append(out, all[i])
		}
	}
	return out, nil
}

// fakeTickets issues predictable tickets and records who asked.
type fakeTickets struct {
	mu     sync.Mutex
	issued []domain.Principal
	err    error
}

func (f *fakeTickets) Issue(_ context.Context, p domain.Principal, roomID int64) (string, time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return "", time.Time{}, f.err
	}
	f.issued = append(f.issued, p)
	return "ticket-" + p.UserID, epoch.Add(30 * time.Second), nil
}

// fakeMetrics records ObserveHTTP calls.
type fakeMetrics struct {
	mu       sync.Mutex
	observed []string // "route status"
}

func (m *fakeMetrics) ObserveHTTP(route string, status int, _ time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.observed = append(m.observed, route+" "+http.StatusText(status))
}

func (m *fakeMetrics) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		io.WriteString(w, "fake_metric 1\n")
	})
}

func (m *fakeMetrics) seen() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.observed)
}

// logBuffer collects JSON log lines; the server writes its access line
// after the response is sent, so readers wait for the server to close.
type logBuffer struct{ domaintest.SyncBuffer }

// lines returns the log's lines decoded.
func (b *logBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(b.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// fixture is a Server over fakes, served by an httptest.Server.
type fixture struct {
	rooms   *fakeRooms
	lister  *fakeLister
	pager   *fakePager
	tickets *fakeTickets
	metrics *fakeMetrics
	logs    *logBuffer
	srv     *httptest.Server
}

// newFixture builds the fixture; edit adjusts the config and dependencies
// before the server is built.
func newFixture(t *testing.T, edit func(*httpapi.Config, *httpapi.Deps)) *fixture {
	t.Helper()
	f := &fixture{
		rooms:   newFakeRooms(),
		lister:  &fakeLister{rooms: map[string][]httpapi.RoomSummary{}},
		pager:   &fakePager{msgs: map[int64][]room.Message{}},
		tickets: &fakeTickets{},
		metrics: &fakeMetrics{},
		logs:    &logBuffer{},
	}
	var cfg httpapi.Config
	deps := httpapi.Deps{
		Logger: slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Verifier: fakeVerifier{
			aliceToken: {UserID: "alice", Roles: []string{"user"}, ExpiresAt: epoch.Add(time.Hour)},
			bobToken:   {UserID: "bob", ExpiresAt: epoch.Add(time.Hour)},
		},
		Rooms:      f.rooms,
		RoomLister: f.lister,
		Messages:   f.pager,
		Tickets:    f.tickets,
		Metrics:    f.metrics,
		Docs:       docs.FS,
		ChatWS:     echoRoom("chat"),
		AuditWS:    echoRoom("audit"),
	}
	if edit != nil {
		edit(&cfg, &deps)
	}
	f.srv = httptest.NewServer(httpapi.NewServer(cfg, deps).Handler())
	t.Cleanup(f.srv.Close)
	return f
}

// echoRoom stands in for the WebSocket gateway: it answers its kind and
// the room_id path value.
func echoRoom(kind string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, kind+" "+r.PathValue("room_id"))
	})
}

// response is what a test request got back.
type response struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body as a JSON value.
func (r response) json(t *testing.T) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("body %q is not JSON: %v", r.body, err)
	}
	return v
}

// errorCode returns the code of an {"error":{"code","message"}} body, and
// fails the test when the body is not of that shape.
func (r response) errorCode(t *testing.T) string {
	t.Helper()
	var e struct {
		Error *struct {
			Code    *string `json:"code"`
			Message *string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil || e.Error == nil || e.Error.Code == nil || e.Error.Message == nil || *e.Error.Message == "" {
		t.Fatalf("body %q is not {\"error\":{\"code\",\"message\"}} (%v)", r.body, err)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type = %q, want application/json", ct)
	}
	return *e.Error.Code
}

// request describes a test request.
type request struct {
	method, path, token, body string
	header                    map[string]string
}

func (f *fixture) do(t *testing.T, req request) response {
	t.Helper()
	var body io.Reader
	if req.body != "" {
		body = strings.NewReader(req.body)
	}
	hr, err := http.NewRequestWithContext(t.Context(), req.method, f.srv.URL+req.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if req.token != "" {
		hr.Header.Set("Authorization", "Bearer "+req.token)
	}
	if req.body != "" {
		hr.Header.Set("Content-Type", "application/json")
	}
	for k, v := range req.header {
		hr.Header.Set(k, v)
	}
	resp, err := f.srv.Client().Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// closeAndLogs waits for every request to finish (and so to be logged),
// then returns the log's lines.
func (f *fixture) closeAndLogs(t *testing.T) []map[string]any {
	t.Helper()
	f.srv.Close()
	return f.logs.lines(t)
}
