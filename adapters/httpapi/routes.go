package httpapi

import (
	"net/http"
	"strings"
)

// routes registers every route of the server. The patterns are also the
// route labels of the access log and the metrics.
func (s *Server) routes() {
	handle := func(pattern string, h http.Handler) { s.mux.Handle(pattern, routed(h)) }
	// Every path under /api answers CORS preflights (OPTIONS) too.
	preflight := map[string]bool{}
	browser := func(pattern string, h http.Handler) {
		handle(pattern, s.cors(noStore(h)))
		if _, path, _ := strings.Cut(pattern, " "); !preflight[path] {
			preflight[path] = true
			handle("OPTIONS "+path, s.handlePreflight())
		}
	}
	api := func(pattern string, h http.Handler) { browser(pattern, s.authenticate(s.limit(h))) }

	api("POST /api/rooms", handleCreateRoom(s.deps.Rooms, s.cfg.MaxBodyBytes))
	api("GET /api/rooms", handleListRooms(s.deps.RoomLister, s.cfg.MaxRooms))
	api("GET /api/rooms/{id}", handleGetRoom(s.readRooms()))
	api("DELETE /api/rooms/{id}", handleDeleteRoom(s.deps.Rooms))
	api("POST /api/me/erase", handleEraseMe(s.deps.Erasure))
	api("GET /api/rooms/{id}/messages", handleListMessages(s.readRooms(), s.deps.Messages))
	api("POST /api/rooms/{id}/ticket", handleCreateTicket(s.deps.Rooms, s.deps.Tickets))
	if s.deps.DevTokens != nil { // development only: no route at all otherwise
		browser("POST /api/dev/token", handleDevToken(s.deps.DevTokens, s.cfg.MaxBodyBytes))
	}

	handle("GET /livez", handleLivez())
	handle("GET /readyz", noStore(handleReadyz(s.deps.Checks, s.deps.DegradedChecks, s.cfg.ReadinessTimeout)))
	handle("GET /metrics", handleMetrics(s.deps.Metrics))
	handle("GET /openapi.yaml", handleDocument(s.deps.Docs, "openapi.yaml"))
	handle("GET /asyncapi.yaml", handleDocument(s.deps.Docs, "asyncapi.yaml"))

	handle("GET /ws/chat/{room_id}/{$}", orNotFound(s.deps.ChatWS))
	handle("GET /ws/audit/{room_id}/{$}", orNotFound(s.deps.AuditWS))

	handle("GET /{$}", orNotFound(s.deps.Web))
	handle("GET /web/", orNotFound(s.deps.Web))
}
