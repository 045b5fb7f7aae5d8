// Package stack is chatd wired: given its configuration, parsed and
// checked once by cmd/internal/chatdenv, New builds every component — the
// event store, the audit chain, the ChatLog and memory projections, retrieval,
// the chat service, the WebSocket gateway and the REST API — and
// Server.Serve runs them until its context ends, then shuts down in order.
//
// chatd's main is a thin caller of it, and so is parley-bench's chatd
// child process: the benchmark measures exactly the server users run.
package stack
