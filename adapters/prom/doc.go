// Package prom measures Parley with Prometheus (client_golang) and serves
// the measurements at /metrics.
//
// Metrics holds its own prometheus.Registry, never the global one, so two
// servers in one process (as in tests) do not collide. It implements
// chat.Metrics for the event store and answer pipeline, the hooks the
// WebSocket gateway calls (ConnOpened, FrameIn, SendQueueDrop, ...), the
// HTTP middleware's ObserveHTTP, and SetProjectionLag for projectors.
//
// Label values come from closed sets so that a client cannot grow the
// number of series: error codes, route patterns, frame types of the
// protocol (anything else is counted as "other"), connection kinds.
package prom
