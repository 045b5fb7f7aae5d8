// Package httpapi is Parley's HTTP edge: the REST API under /api, the
// operations endpoints (/livez, /readyz, /metrics), the API documents
// (/openapi.yaml, /asyncapi.yaml), and the mount points of the WebSocket
// gateway (/ws/chat/{room_id}/, /ws/audit/{room_id}/).
//
// Every route is registered in routes.go. Handlers are functions that
// return an http.Handler and take only the small interfaces they use, which
// are declared here, at the consumer; cmd/chatd wires the real
// implementations (chat.Service, the ChatLog read model, postgres.Tickets,
// jwtauth.Verifier, prom.Metrics, wsapi.Gateway).
//
// Errors carry codes from the domain's closed set and are answered as
// {"error":{"code","message"}} with the status the code maps to (see
// statusOf). A room that exists but is not the caller's is answered like a
// missing one, 404, so room ids cannot be probed. The exception is a caller
// with the auditor role (Config.AuditorRole) when Deps.Audit is wired: it
// may read any existing room with GET /api/rooms/{id} and /messages, and
// each such read is recorded in the room's stream as room.AuditAccessed. Internal errors answer
// "internal error"; their detail goes to the log only.
//
// Each request is logged once, in its access-log line, together with the
// error it was answered with. The line has the method, the route pattern,
// the path (never the query string, which may hold a WebSocket ?token= or
// ?ticket=), the status, the duration, the request id and the user id;
// never a header.
package httpapi
