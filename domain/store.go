package domain

import (
	"context"
	"math"
	"slices"
)

// EndOfStream, as ReadStreamOptions.From with Backward, starts at the
// stream's last event.
const EndOfStream int64 = math.MaxInt64

// DefaultReadLimit is the page size used when a read's Limit is zero.
const DefaultReadLimit = 1000

// Direction is the order a stream read walks in.
type Direction uint8

// Read directions.
const (
	Forward Direction = iota
	Backward
)

func (d Direction) String() string {
	if d == Backward {
		return "backward"
	}
	return "forward"
}

// ReadStreamOptions selects a page of one stream.
type ReadStreamOptions struct {
	// Direction is Forward (the zero value) or Backward.
	Direction Direction
	// From is the first version returned (inclusive): 0 is the start;
	// EndOfStream with Backward is the last event.
	From int64
	// Limit caps the page; zero means DefaultReadLimit. With Types it
	// counts the events returned, not those passed over.
	Limit int
	// Types, when not empty, keeps only events of these types: the page
	// holds the first Limit of them from From on, in Direction, and their
	// versions keep the gaps the other events leave. As without it, a page
	// shorter than Limit means the read reached the end of the stream (or,
	// backward, its start). A stream that exists but has none of them gives
	// an empty page, not a *StreamNotFoundError.
	Types []string
}

// Selects reports whether a read with these options returns events of
// type t.
func (o ReadStreamOptions) Selects(t string) bool {
	return len(o.Types) == 0 || slices.Contains(o.Types, t)
}

// ReadAllOptions selects a page of the global log in global order.
type ReadAllOptions struct {
	// After is exclusive: events strictly after this position are returned.
	// Start reads from the beginning.
	After Position
	// Limit caps the page; zero means DefaultReadLimit.
	Limit int
	// StreamPrefix, when set, keeps only events of streams whose names
	// start with it.
	StreamPrefix string
}

// SubscribeAllOptions selects what a subscription to the global log delivers.
type SubscribeAllOptions struct {
	// After is exclusive, as in ReadAllOptions: pass the position of the
	// last event handled (the checkpoint) to resume.
	After Position
	// StreamPrefix, when set, keeps only events of streams whose names
	// start with it.
	StreamPrefix string
}

// Handler receives events from a subscription, a batch at a time in order.
// A batch is never empty. Returning an error ends the subscription with
// that error. The handler may keep the slice.
type Handler func(ctx context.Context, batch []RecordedEvent) error

// Appender writes events to the end of a stream.
type Appender interface {
	// Append writes events atomically to the end of stream if expected
	// holds, and returns the new last version and the last event's global
	// position. A failed expectation is a *ConflictError. Appending the
	// same event IDs again with the same expectation is an idempotent
	// retry: it writes nothing and returns the original result; a retry
	// whose IDs only partly match the stored events is a *ConflictError.
	// Invalid input is an *InvalidEventError and nothing is written.
	Append(ctx context.Context, stream string, expected ExpectedVersion, events ...EventData) (AppendResult, error)
}

// StreamReader reads one stream.
type StreamReader interface {
	// ReadStream returns a page of stream. A stream with no events is a
	// *StreamNotFoundError; a page past the end is empty.
	ReadStream(ctx context.Context, stream string, opts ReadStreamOptions) ([]RecordedEvent, error)
}

// AllReader reads the global log.
type AllReader interface {
	// ReadAll returns a page of the global log in global order. Paging by
	// After = last event's Position never skips an event, also one whose
	// writing transaction commits late.
	ReadAll(ctx context.Context, opts ReadAllOptions) ([]RecordedEvent, error)
	// HeadPosition returns the position of the last event a ReadAll would
	// return now, or Start when there is none: subscribing after it
	// delivers only events that come later.
	HeadPosition(ctx context.Context) (Position, error)
}

// Subscriber follows the log: catch-up from a starting point, then live.
type Subscriber interface {
	// SubscribeAll delivers every event after opts.After in global order,
	// catching up on the past and then following live, until ctx is done
	// (it returns ctx's error) or the handler fails (it returns that
	// error). Delivery is at least once: checkpoint each event's Position
	// and resume after it.
	SubscribeAll(ctx context.Context, opts SubscribeAllOptions, h Handler) error
	// SubscribeStream delivers the events of one stream with versions above
	// after (NoVersion for all of them), catch-up then live, with the same
	// termination rules. The stream need not exist yet.
	SubscribeStream(ctx context.Context, stream string, after int64, h Handler) error
}

// EventStore is the port every store adapter implements: one append-only
// log with a stream per room. Its contract is domaintest.RunEventStoreTests.
type EventStore interface {
	Appender
	StreamReader
	AllReader
	Subscriber
}

// ReadLimit returns limit, or DefaultReadLimit when it is not positive.
func ReadLimit(limit int) int {
	if limit <= 0 {
		return DefaultReadLimit
	}
	return limit
}
