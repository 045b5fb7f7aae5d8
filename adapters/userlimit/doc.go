// Package userlimit keeps per-user limits: Limits is a token bucket per
// user (golang.org/x/time/rate) in one process; Limiter keeps the rates
// and the cap on open connections the WebSocket gateway and the REST API
// enforce, shared across replicas through stores (adapters/redis.Limits)
// and falling back to per-process limits while they fail.
package userlimit
