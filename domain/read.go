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
// errors with their own context. Each range starts again from opts.
func StreamEvents(ctx context.Context, r StreamReader, stream string, opts ReadStreamOptions) iter.Seq2[RecordedEvent, error] {
	return func(yield func(RecordedEvent, error) bool) {
		o := opts
		o.Limit = ReadLimit(o.Limit)
		readPages(ctx, yield, o.Limit, func() ([]RecordedEvent, error) { return r.ReadStream(ctx, stream, o) },
			func(last RecordedEvent) bool {
				if o.Direction == Backward {
					o.From = last.Version - 1
					return o.From >= 0
				}
				o.From = last.Version + 1
				return true
			})
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
		o := opts
		o.Limit = ReadLimit(o.Limit)
		readPages(ctx, yield, o.Limit, func() ([]RecordedEvent, error) { return r.ReadAll(ctx, o) },
			func(last RecordedEvent) bool { o.After = last.Position; return true })
	}
}

// readPages yields the events of the pages read returns, moving on with
// next (false: there is nothing after last) until a page is shorter than
// limit or yield stops.
func readPages(ctx context.Context, yield func(RecordedEvent, error) bool, limit int,
	read func() ([]RecordedEvent, error), next func(last RecordedEvent) bool) {
	for first := true; ; first = false {
		if err := ctx.Err(); !first && err != nil {
			yield(RecordedEvent{}, err)
			return
		}
		page, err := read()
		if err != nil {
			yield(RecordedEvent{}, err)
			return
		}
		for _, ev := range page {
			if !yield(ev, nil) {
				return
			}
		}
		if len(page) < limit || !next(page[len(page)-1]) {
			return
		}
	}
}

// filterPage is the least number of events FilterStream reads at a time.
const filterPage = 256

// FilterStream is ReadStream's type filter for a store that cannot filter
// on the server: it returns the page opts selects by reading stream from r
// without opts.Types, at least filterPage events at a time, and keeping
// the events of opts.Types until it has opts.Limit of them or the stream
// ends. r may be the store calling it: the reads FilterStream makes carry
// no Types. A missing stream is r's *StreamNotFoundError.
func FilterStream(ctx context.Context, r StreamReader, stream string, opts ReadStreamOptions) ([]RecordedEvent, error) {
	limit := ReadLimit(opts.Limit)
	every := opts
	every.Types, every.Limit = nil, max(limit, filterPage)
	var out []RecordedEvent
	for ev, err := range StreamEvents(ctx, r, stream, every) {
		if err != nil {
			return nil, err
		}
		if !opts.Selects(ev.Type) {
			continue
		}
		if out = append(out, ev); len(out) == limit {
			break
		}
	}
	return out, nil
}
