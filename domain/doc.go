// Package domain holds Parley's shared vocabulary: error codes, identifiers,
// the event envelope, stream versions and global positions, and the
// EventStore port every store adapter implements.
//
// It imports the standard library only (a test checks this), so every other
// package can depend on it and it depends on nothing. Time, identifiers and
// randomness are passed in by callers; nothing here reads the clock.
package domain
