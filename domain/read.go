package domain

import (
	"context"
	"iter"
)

// StreamEvents is the one paging loop over a stream: it yields the events
// of stream that opts selects — from opts.From on, in opts.Direction —
// reading opts.Limit of them at a time (zero: DefaultReadLimit) until a
// page comes back short or, backward, version 0 was read. Breaking out of
// the loop reads no further page. A read's error (a *StreamNotFoundError,
// say) is yielded once, with the zero event, and ends the sequence, as
// does ctx ending between two pages (its error is yielded). Callers wrap
// errors with their own context.
func StreamEvents(ctx context.Context, r StreamReader, stream string, opts ReadStreamOptions) iter.Seq2[RecordedEvent, error] {
	return func(yield func(RecordedEvent, error) bool) {
		opts.Limit = ReadLimit(opts.Limit)
		for read := false; ; read = true {
			if err := ctx.Err(); read && err != nil {
				yield(RecordedEvent{}, err)
				return
			}
			page, err := r.ReadStream(ctx, stream, opts)
			if err != nil {
				yield(RecordedEvent{}, err)
				return
			}
			for _, ev := range page {
				if !yield(ev, nil) {
					return
				}
			}
			if len(page) < opts.Limit {
				return
			}
			last := page[len(page)-1].Version
			if opts.Direction == Backward {
				if last <= 0 {
					return
				}
				opts.From = last - 1
			} else {
				opts.From = last + 1
			}
		}
	}
}

// AllEvents is the one paging loop over the global log: it yields the
// events after opts.After (of the streams opts.StreamPrefix selects) in
// global order, reading opts.Limit at a time (zero: DefaultReadLimit),
// each page after the last event of the one before, until a page comes
// back short. Breaking out reads no further page; errors end the sequence
// as StreamEvents' do.
func AllEvents(ctx context.Context, r AllReader, opts ReadAllOptions) iter.Seq2[RecordedEvent, error] {
	return func(yield func(RecordedEvent, error) bool) {
		opts.Limit = ReadLimit(opts.Limit)
		for read := false; ; read = true {
			if err := ctx.Err(); read && err != nil {
				yield(RecordedEvent{}, err)
				return
			}
			page, err := r.ReadAll(ctx, opts)
			if err != nil {
				yield(RecordedEvent{}, err)
				return
			}
			for _, ev := range page {
				if !yield(ev, nil) {
					return
				}
			}
			if len(page) < opts.Limit {
				return
			}
			opts.After = page[len(page)-1].Position
		}
	}
}
