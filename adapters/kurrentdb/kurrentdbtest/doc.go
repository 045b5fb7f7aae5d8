// Package kurrentdbtest serves an in-process fake of a KurrentDB node's
// gRPC streams API for tests that cannot reach a real server: the
// KurrentDB store's own tests, and end-to-end tests of the binaries that
// use it. It models the server's behaviour the store depends on (see
// Server), including its failures: a node that goes down and comes back
// on the same port, "Server Is Too Busy" and "Not Ready" replies, refused
// rights, deleted streams, a lagging follower. It is not KurrentDB; the
// store's contract also runs against a real server when
// PARLEY_KURRENTDB_URL is set.
package kurrentdbtest
