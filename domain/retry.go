package domain

import (
	"context"
	"errors"
	"fmt"
)

// Decider is one round of an optimistic write: it loads what the write
// depends on, decides the events to append and returns them with the
// expectation they were decided under (the version it loaded, as a rule).
// conflict is nil on the first round; on later rounds it is the error of
// the append that conflicted, so the Decider loads again before deciding
// (and may see, in it, how the stream moved). No events means nothing to
// append.
type Decider func(ctx context.Context, conflict error) ([]EventData, ExpectedVersion, error)

// AppendDecided is the one conflict-retry loop: it appends to stream what
// decide decides, at the expectation it gives, and when the append
// conflicts (ErrConflict) it asks decide again, for at most attempts
// appends in all (at least one). It returns the successful append's
// result, or the zero AppendResult when decide decided nothing. decide's
// errors and the append's other errors are returned as they are; a write
// that still conflicts after attempts appends gets an error naming the
// stream and the attempts, wrapping the last conflict.
func AppendDecided(ctx context.Context, a Appender, stream string, attempts int, decide Decider) (AppendResult, error) {
	var conflict error
	for attempt := 1; ; attempt++ {
		events, expected, err := decide(ctx, conflict)
		if err != nil || len(events) == 0 {
			return AppendResult{}, err
		}
		res, err := a.Append(ctx, stream, expected, events...)
		switch {
		case err == nil:
			return res, nil
		case !errors.Is(err, ErrConflict):
			return AppendResult{}, err
		case attempt >= attempts:
			return AppendResult{}, fmt.Errorf("append to %s: still conflicting after %d attempts: %w", stream, attempt, err)
		}
		conflict = err
	}
}
