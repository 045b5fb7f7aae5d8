// Package wire holds the JSON shapes that more than one transport sends, so
// that each is written once: a room's message (the WebSocket history item
// and the REST message, one object) and a time (RFC 3339 in UTC with
// milliseconds). httpapi and wsapi both build their answers from it; the
// shapes are documented in docs/protocol.md, asyncapi.yaml and
// openapi.yaml, and tested against them.
package wire
