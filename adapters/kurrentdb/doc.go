// Package kurrentdb is the domain.EventStore over KurrentDB (formerly
// EventStoreDB): each Parley stream is a KurrentDB stream, Parley versions
// are stream revisions and Parley positions are $all log positions.
//
// It wraps github.com/EventStore/EventStore-Client-Go/v4 (package esdb),
// which is archived in favour of KurrentDB-Client-Go
// (github.com/kurrent-io/KurrentDB-Client-Go). Switching clients touches
// only this package. The Store documentation lists what the store adds to
// the client; conn.go describes the client's failure modes the store works
// around. Package kurrentdbtest fakes the server for tests.
package kurrentdb
