// Package wsapi is Parley's WebSocket gateway (gorilla/websocket): the
// /ws/chat/{room_id}/ endpoint, its authentication and limits, and the hub
// that holds one subscription to the event store per process and fans each
// room's events out to that room's sockets.
//
// Every frame a client sees comes from the log: a message or chunk is
// appended first, then delivered by the hub. A connection registers with
// the hub before it reads its catch-up (history or ?after=), buffers what
// the hub delivers meanwhile, and drops anything at or below the version it
// has already queued, so there is no gap and no duplicate.
//
// Each connection has exactly one reader goroutine (the handler's own) and
// one writer goroutine, a bounded send queue, a read limit, pings below the
// pong wait, and a deadline on every write. A client that cannot keep up is
// closed with 4000 and resumes with ?after=<last version>&hash=<its hash>;
// a position the log no longer holds (beyond its head, or another hash
// there) gets the room's history instead (resume.go). When the event store
// restarts (domain.ErrStoreRestarted) every socket is closed with 1012, and
// while it is unavailable new ones with 1013. Client frames are decoded
// strictly (adapters/strictjson). Every close, code and reason, is named
// once, in close.go.
//
// /ws/audit/{room_id}/ (Gateway.Audit) serves the same frames read-only to
// tokens with the auditor role, for any room; each accepted connection is
// recorded in the room's stream as room.AuditAccessed, which no client is
// ever sent.
package wsapi
