// Package stack is chatd wired: ParseConfig reads its configuration once
// (environment and flags), New builds every component over it — the event
// store, the audit chain, the ChatLog and memory projections, retrieval,
// the chat service, the WebSocket gateway and the REST API — and
// Server.Serve runs them until its context ends, then shuts down in order.
//
// chatd's main is a thin caller of it, and so is parley-bench's chatd
// child process: the benchmark measures exactly the server users run.
package stack
