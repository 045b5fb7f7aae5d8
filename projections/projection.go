package projections

import (
	"context"
	"fmt"

	"github.com/parleychat/parley/domain"
)

// Projection is a read model the Runner feeds.
type Projection interface {
	// Name identifies the projection in logs, its status and its
	// checkpoint (e.g. "chatlog").
	Name() string
	// Checkpoint returns the position of the last event applied, or
	// domain.Start before the first.
	Checkpoint(ctx context.Context) (domain.Position, error)
	// Apply writes the effects of batch and the new checkpoint (the last
	// event's Position) atomically: all of it or nothing. It must be
	// idempotent: events it has already applied change nothing, whether
	// the whole batch is a repeat (a retry after a lost commit
	// acknowledgement) or only part of it. An event it can never apply is
	// reported as an *EventError, and then nothing of the batch is applied.
	Apply(ctx context.Context, batch []domain.RecordedEvent) error
}

// ErrorRecorder is implemented by projections that store the runner's
// last error beside their checkpoint, so that operators' tools in other
// processes can show why a projection is stuck. A later successful Apply
// clears it.
type ErrorRecorder interface {
	RecordError(ctx context.Context, msg string) error
}

// FailureRecorder is implemented by projections that also store where the
// runner stopped: the position of the event it can never apply, beside
// the error, so that operators' tools can say "stopped at position X". A
// later successful Apply, or a later RecordError, clears it.
type FailureRecorder interface {
	RecordFailure(ctx context.Context, at domain.Position, msg string) error
}

// Source is what a Runner needs of the event store.
type Source interface {
	// SubscribeAll follows the global log (domain.Subscriber).
	SubscribeAll(ctx context.Context, opts domain.SubscribeAllOptions, h domain.Handler) error
	// ReadAll pages the global log (domain.AllReader); Status and WaitFor
	// use it to tell whether any event the projection handles is pending.
	ReadAll(ctx context.Context, opts domain.ReadAllOptions) ([]domain.RecordedEvent, error)
	// HeadPosition is the position of the log's last readable event
	// (domain.AllReader).
	HeadPosition(ctx context.Context) (domain.Position, error)
}

// EventError reports an event that a projection can never apply, such as
// data that does not decode. Retrying cannot help: the Runner stops.
type EventError struct {
	Type     string
	Stream   string
	Version  int64
	Position domain.Position
	Err      error
}

// Error names the event and says why it cannot be applied.
func (e *EventError) Error() string {
	return fmt.Sprintf("event %s %s@%d (position %s) cannot be applied: %v", e.Type, e.Stream, e.Version, e.Position, e.Err)
}

// Unwrap returns the cause.
func (e *EventError) Unwrap() error { return e.Err }

// NewEventError returns the EventError of ev failing with err.
func NewEventError(ev domain.RecordedEvent, err error) *EventError {
	return &EventError{Type: ev.Type, Stream: ev.Stream, Version: ev.Version, Position: ev.Position, Err: err}
}
