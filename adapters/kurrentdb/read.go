package kurrentdb

import (
	"context"
	"errors"
	"io"
	"strings"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"google.golang.org/grpc/metadata"

	"github.com/parleychat/parley/domain"
)

// readAllPage is how many events ReadAll asks the server for at a time
// while it filters $all.
const readAllPage = 500

// ReadStream implements domain.StreamReader. The server cannot filter a
// stream read by event type, so a read with opts.Types pages through the
// stream and keeps those types here (domain.FilterStream).
func (s *Store) ReadStream(ctx context.Context, stream string, opts domain.ReadStreamOptions) ([]domain.RecordedEvent, error) {
	if err := domain.ValidateStreamName(stream); err != nil {
		return nil, err
	}
	if len(opts.Types) > 0 {
		return domain.FilterStream(ctx, s, stream, opts)
	}
	limit := uint64(domain.ReadLimit(opts.Limit))
	if opts.Direction != domain.Backward {
		return s.readStream(ctx, stream, esdb.ReadStreamOptions{Direction: esdb.Forwards, From: esdb.Revision(uint64(max(opts.From, 0)))}, limit, false)
	}
	end := esdb.ReadStreamOptions{Direction: esdb.Backwards, From: esdb.End{}}
	switch {
	case opts.From == domain.EndOfStream:
		return s.readStream(ctx, stream, end, limit, false)
	case opts.From < 0:
		// Nothing is at or before version -1, but a missing stream is
		// still reported.
		if _, err := s.readStream(ctx, stream, end, 1, false); err != nil {
			return nil, err
		}
		return nil, nil
	}
	evs, err := s.readStream(ctx, stream, esdb.ReadStreamOptions{Direction: esdb.Backwards, From: esdb.Revision(uint64(opts.From))}, limit, false)
	if err != nil {
		return nil, err
	}
	if len(evs) == 0 || evs[0].Version < opts.From {
		// From is past the end: read from the last event instead, as the
		// port asks, whether the server returned nothing or clamped.
		return s.readStream(ctx, stream, end, limit, false)
	}
	return evs, nil
}

// readStream reads up to count events of stream; a missing stream is a
// *domain.StreamNotFoundError. With leader set the read asks for the
// leader (the "requires-leader" header): a follower answers with the
// leader's address, the client moves there, and the read is made again.
func (s *Store) readStream(ctx context.Context, stream string, opts esdb.ReadStreamOptions, count uint64, leader bool) ([]domain.RecordedEvent, error) {
	var out []domain.RecordedEvent
	read := func(ctx context.Context, ec *esdb.Client) error {
		out = out[:0]
		if leader {
			ctx = metadata.AppendToOutgoingContext(ctx, "requires-leader", "true")
		}
		rs, err := ec.ReadStream(ctx, stream, opts, count)
		if err != nil {
			return err
		}
		defer rs.Close()
		for {
			ev, err := rs.Recv()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			out = append(out, toRecorded(ev.OriginalEvent()))
		}
	}
	err := s.call(ctx, read)
	if err != nil && ctx.Err() == nil && classify(err) == kindNotLeader {
		err = s.call(ctx, read)
	}
	switch {
	case err == nil:
		return out, nil
	case ctx.Err() == nil && classify(err) == kindNotFound:
		return nil, &domain.StreamNotFoundError{Stream: stream}
	}
	return nil, mapError(ctx, err, "read %s", stream)
}

func isNotFound(err error) bool {
	var nf *domain.StreamNotFoundError
	return errors.As(err, &nf)
}

// ReadAll implements domain.AllReader. The client cannot ask the server to
// filter a read of $all, so ReadAll reads it readAllPage events at a time
// and keeps Parley's events of streams with the prefix, until it has
// opts.Limit of them or reaches the end of the log.
func (s *Store) ReadAll(ctx context.Context, opts domain.ReadAllOptions) ([]domain.RecordedEvent, error) {
	limit := domain.ReadLimit(opts.Limit)
	var out []domain.RecordedEvent
	seen := opts.After // the last position examined; a page starts there, inclusive
	for {
		var from esdb.AllPosition = esdb.Start{}
		if !seen.IsZero() {
			from = fromPosition(seen)
		}
		advanced := false
		n, err := s.scanAll(ctx, from, func(r *esdb.RecordedEvent) bool {
			pos := toPosition(r.Position)
			if !seen.Less(pos) {
				return true // the event at the starting position, read again
			}
			seen, advanced = pos, true
			if isSystem(r) || !strings.HasPrefix(r.StreamID, opts.StreamPrefix) {
				return true
			}
			out = append(out, toRecorded(r))
			return len(out) < limit
		})
		if err != nil {
			return nil, err
		}
		if len(out) == limit || n < readAllPage || !advanced {
			return out, nil
		}
	}
}

// scanAll reads up to readAllPage events of $all from a position,
// inclusive, handing each to fn until fn returns false. It returns how
// many events it read.
func (s *Store) scanAll(ctx context.Context, from esdb.AllPosition, fn func(*esdb.RecordedEvent) bool) (int, error) {
	n := 0
	err := s.call(ctx, func(ctx context.Context, ec *esdb.Client) error {
		rs, err := ec.ReadAll(ctx, esdb.ReadAllOptions{Direction: esdb.Forwards, From: from}, readAllPage)
		if err != nil {
			return err
		}
		defer rs.Close()
		for ; ; n++ {
			ev, err := rs.Recv()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			if !fn(ev.OriginalEvent()) {
				n++
				return nil
			}
		}
	})
	if err != nil {
		return n, mapError(ctx, err, "read $all")
	}
	return n, nil
}

// HeadPosition implements domain.AllReader: it reads $all backwards from
// its end, a page at a time, to the last event ReadAll would return.
func (s *Store) HeadPosition(ctx context.Context) (domain.Position, error) {
	var from esdb.AllPosition = esdb.End{}
	var cursor *domain.Position // the last position examined
	for {
		var (
			n     int
			head  domain.Position
			found bool
		)
		err := s.call(ctx, func(ctx context.Context, ec *esdb.Client) error {
			rs, err := ec.ReadAll(ctx, esdb.ReadAllOptions{Direction: esdb.Backwards, From: from}, readAllPage)
			if err != nil {
				return err
			}
			defer rs.Close()
			n, head, found, err = scanBack(rs, cursor)
			return err
		})
		if err != nil {
			return domain.Position{}, mapError(ctx, err, "read the head of $all")
		}
		if found {
			return head, nil
		}
		if n < readAllPage || head.IsZero() {
			return domain.Start, nil // the start of the log, or no progress
		}
		cursor = &head
		from = fromPosition(head)
	}
}

// scanBack reads a backward page of $all for its first event not at or
// after cursor that ReadAll would return. It returns how many events it
// read, and either that event's position and true, or the position of
// the oldest event it examined (zero if none).
func scanBack(rs *esdb.ReadStream, cursor *domain.Position) (n int, pos domain.Position, found bool, err error) {
	for ; ; n++ {
		ev, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return n, pos, false, nil
		}
		if err != nil {
			return n, pos, false, err
		}
		r := ev.OriginalEvent()
		p := toPosition(r.Position)
		if cursor != nil && !p.Less(*cursor) {
			continue // the event at the starting position, read again
		}
		pos = p
		if !isSystem(r) {
			return n + 1, pos, true, nil
		}
	}
}
