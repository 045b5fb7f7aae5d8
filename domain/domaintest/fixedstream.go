package domaintest

import (
	"context"

	"github.com/parleychat/parley/domain"
)

// FixedStream is a domain.StreamReader that serves one stream from a
// slice as a store would serve whatever it holds (a tampered store, say):
// a page is the slice's events at or above From (of opts.Types, if set),
// in the slice's order, up to the limit. An empty slice, or another
// stream, is not found.
type FixedStream struct {
	Stream string
	Events []domain.RecordedEvent
}

// ReadStream implements domain.StreamReader, forward only.
func (f FixedStream) ReadStream(_ context.Context, stream string, opts domain.ReadStreamOptions) ([]domain.RecordedEvent, error) {
	if stream != f.Stream || len(f.Events) == 0 {
		return nil, &domain.StreamNotFoundError{Stream: stream}
	}
	var out []domain.RecordedEvent
	for _, ev := range f.Events {
		if ev.Version >= opts.From && opts.Selects(ev.Type) && len(out) < domain.ReadLimit(opts.Limit) {
			out = append(out, ev)
		}
	}
	return out, nil
}
