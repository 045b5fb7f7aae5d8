package kurrentdb

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/parleychat/parley/domain"
)

// Append implements domain.Appender. See Store for the tail check that
// makes retries idempotent, the read-back of the last position, and how
// appends over the server's size limit are split.
func (s *Store) Append(ctx context.Context, stream string, expected domain.ExpectedVersion, events ...domain.EventData) (domain.AppendResult, error) {
	if err := domain.ValidateAppend(stream, events); err != nil {
		return domain.AppendResult{}, err
	}
	for i, ev := range events {
		if n := appendSize(ev); n > s.maxAppendEventSize {
			return domain.AppendResult{}, &domain.InvalidEventError{Stream: stream, Index: i, Field: "size",
				Reason: fmt.Sprintf("%d bytes as KurrentDB counts them (data, metadata and twice the type), over its MaxAppendEventSize of %d", n, s.maxAppendEventSize)}
		}
	}
	if err := ctx.Err(); err != nil {
		return domain.AppendResult{}, fmt.Errorf("kurrentdb: append to %s: %w", stream, err)
	}
	groups := splitAppend(events, s.maxAppendSize)

	tail, current, err := s.readTail(ctx, stream, events)
	if err != nil {
		return domain.AppendResult{}, err
	}
	plan := planRetry(expected, events, groups, tail, current)
	switch {
	case plan.conflict != "":
		return domain.AppendResult{}, &domain.ConflictError{Stream: stream, Expected: expected, Actual: current, Reason: plan.conflict}
	case plan.done:
		return plan.result, nil
	case plan.skip > 0:
		// The first groups of a split append are stored; write the rest.
		written := 0
		for len(groups) > 0 && written < plan.skip {
			written += len(groups[0])
			groups = groups[1:]
		}
		return s.appendGroups(ctx, stream, expected, domain.Exact(plan.after), groups, plan.skip, len(events))
	}
	return s.appendGroups(ctx, stream, expected, expected, groups, 0, len(events))
}

// appendGroups writes groups one request each, the first at exp and each
// next one at the exact version the previous one returned. expected is the
// caller's expectation, for errors; written counts the events of this
// append already stored, total all of them.
func (s *Store) appendGroups(ctx context.Context, stream string, expected, exp domain.ExpectedVersion, groups [][]domain.EventData, written, total int) (domain.AppendResult, error) {
	var res domain.AppendResult
	for _, group := range groups {
		r, err := s.appendOnce(ctx, stream, exp, group)
		if err != nil {
			var ce *domain.ConflictError
			switch {
			case errors.As(err, &ce):
				ce.Expected = expected
				if written > 0 {
					ce.Reason = fmt.Sprintf("the append was split into several requests and the stream changed after the first %d of its %d events were written", written, total)
				}
			case written > 0:
				err = fmt.Errorf("kurrentdb: append to %s split into several requests stopped after %d of %d events (retry it to finish): %w", stream, written, total, err)
			}
			return domain.AppendResult{}, err
		}
		res = r
		exp = domain.Exact(r.Version)
		written += len(group)
	}
	return res, nil
}

// appendOnce sends one append request and returns the version and the
// read-back position of its last event.
func (s *Store) appendOnce(ctx context.Context, stream string, exp domain.ExpectedVersion, events []domain.EventData) (domain.AppendResult, error) {
	data := make([]esdb.EventData, len(events))
	for i, ev := range events {
		data[i] = toEventData(ev)
	}
	var wr *esdb.WriteResult
	err := s.call(ctx, func(ctx context.Context, ec *esdb.Client) (err error) {
		wr, err = ec.AppendToStream(ctx, stream, esdb.AppendToStreamOptions{ExpectedRevision: expectedRevision(exp)}, data...)
		return err
	})
	if err != nil {
		if ctx.Err() == nil && classify(err) == kindConflict {
			return domain.AppendResult{}, s.conflict(ctx, stream, exp, err)
		}
		return domain.AppendResult{}, mapError(ctx, err, "append %d events to %s at %s", len(events), stream, exp)
	}
	version := int64(wr.NextExpectedVersion)
	last := events[len(events)-1]
	got, err := s.readStream(ctx, stream, esdb.ReadStreamOptions{Direction: esdb.Forwards, From: esdb.Revision(wr.NextExpectedVersion)}, 1, true)
	if err != nil {
		// The events are stored; a retry with the same IDs and expectation
		// returns the result.
		return domain.AppendResult{}, fmt.Errorf("kurrentdb: appended to %s but could not read back version %d: %w", stream, version, err)
	}
	if len(got) != 1 || got[0].ID != last.ID {
		return domain.AppendResult{}, fmt.Errorf("kurrentdb: append to %s: the server reported version %d, which does not hold the last appended event %s", stream, version, last.ID)
	}
	pos := got[0].Position
	if pos.IsZero() {
		// A server before 22.6 reports no positions on stream reads.
		pos = domain.Position{Commit: wr.CommitPosition, Prepare: wr.PreparePosition}
	}
	return domain.AppendResult{Version: version, Position: pos}, nil
}

// conflict builds the *domain.ConflictError for a wrong-expected-version
// reply, with the current version the server reported or, failing that,
// the one read now.
func (s *Store) conflict(ctx context.Context, stream string, exp domain.ExpectedVersion, err error) error {
	ce := &domain.ConflictError{Stream: stream, Expected: exp}
	if v, ok := currentFromConflict(err); ok {
		ce.Actual = v
		return ce
	}
	last, rerr := s.readStream(ctx, stream, esdb.ReadStreamOptions{Direction: esdb.Backwards, From: esdb.End{}}, 1, true)
	switch {
	case rerr == nil && len(last) == 1:
		ce.Actual = last[0].Version
	case rerr == nil || isNotFound(rerr):
		ce.Actual = domain.NoVersion
	default:
		ce.Actual = domain.NoVersion
		ce.Reason = fmt.Sprintf("the current version could not be read: %v", rerr)
	}
	return ce
}

// readTail reads the end of stream, oldest first, far enough back to hold
// every stored copy of events' IDs that a retry or a partial overlap
// could have left: the last len(events) events and, if one of the IDs is
// among them, len(events) events back from the newest such ID. current is
// the stream's last version, domain.NoVersion when it does not exist.
func (s *Store) readTail(ctx context.Context, stream string, events []domain.EventData) (tail []domain.RecordedEvent, current int64, err error) {
	n := uint64(len(events))
	back, err := s.readStream(ctx, stream, esdb.ReadStreamOptions{Direction: esdb.Backwards, From: esdb.End{}}, n, true)
	if isNotFound(err) {
		return nil, domain.NoVersion, nil
	}
	if err != nil {
		return nil, 0, err
	}
	if len(back) == 0 {
		return nil, domain.NoVersion, nil
	}
	slices.Reverse(back)
	current = back[len(back)-1].Version
	ids := make(map[domain.UUID]bool, len(events))
	for _, ev := range events {
		ids[ev.ID] = true
	}
	newest := int64(-1)
	for _, ev := range back {
		if ids[ev.ID] {
			newest = ev.Version
		}
	}
	oldest := back[0].Version
	want := max(newest-int64(n)+1, 0)
	if newest < 0 || oldest <= want {
		return back, current, nil
	}
	more, err := s.readStream(ctx, stream, esdb.ReadStreamOptions{Direction: esdb.Backwards, From: esdb.Revision(uint64(oldest - 1))}, uint64(oldest-want), true)
	if err != nil {
		return nil, 0, err
	}
	slices.Reverse(more)
	return append(more, back...), current, nil
}

// retryPlan is what Append does given the stream's tail.
type retryPlan struct {
	// conflict, when set, is why the append is a conflict.
	conflict string
	// done reports an idempotent retry: every event is stored where the
	// expectation put it, and result is the original outcome.
	done   bool
	result domain.AppendResult
	// skip > 0 reports a split append cut short: its first skip events
	// are stored, ending at version after, and the rest must follow.
	skip  int
	after int64
}

// planRetry decides from the stream's tail (consecutive events, oldest
// first, ending at version current) whether an append of events in groups
// is new, an idempotent retry, the rest of a split append, or a conflict.
// It follows the in-memory store: a retry is every ID stored, in order, at
// consecutive versions starting where expected puts them; any other
// overlap is a conflict. A prefix of whole groups stored that way at the
// stream's end is a split append to finish.
//
// IDs stored further back than the tail are not seen here; the server
// checks those itself for Exact and NoStream expectations (it compares the
// IDs at the revisions after the expected one) and, while they are in its
// cache, for Any and StreamExists.
func planRetry(expected domain.ExpectedVersion, events []domain.EventData, groups [][]domain.EventData, tail []domain.RecordedEvent, current int64) retryPlan {
	want := make(map[domain.UUID]bool, len(events))
	for _, ev := range events {
		want[ev.ID] = true
	}
	stored := make(map[domain.UUID]domain.RecordedEvent)
	for _, ev := range tail {
		if want[ev.ID] {
			stored[ev.ID] = ev
		}
	}
	if len(stored) == 0 {
		return retryPlan{}
	}
	// k leading events are stored at consecutive versions.
	k := 0
	for i, ev := range events {
		rec, ok := stored[ev.ID]
		if !ok || i > 0 && rec.Version != stored[events[i-1].ID].Version+1 {
			break
		}
		k++
	}
	if k < len(stored) {
		if len(stored) == len(events) {
			return retryPlan{conflict: "the event IDs are already in the stream in another order"}
		}
		return retryPlan{conflict: "some of the event IDs are already in the stream and some are not"}
	}
	first := stored[events[0].ID].Version
	last := stored[events[k-1].ID]
	holds := expected.Holds(first - 1)
	if k == len(events) {
		if !holds {
			return retryPlan{conflict: "the event IDs are already in the stream at other versions"}
		}
		return retryPlan{done: true, result: domain.AppendResult{Version: last.Version, Position: last.Position}}
	}
	if holds && last.Version == current && groupBoundary(groups, k) {
		return retryPlan{skip: k, after: current}
	}
	return retryPlan{conflict: "some of the event IDs are already in the stream and some are not"}
}

// groupBoundary reports whether the first k events are whole groups.
func groupBoundary(groups [][]domain.EventData, k int) bool {
	n := 0
	for _, g := range groups {
		n += len(g)
		if n == k {
			return true
		}
		if n > k {
			return false
		}
	}
	return false
}

// appendSize is the size the server counts an event at against its
// MaxAppendSize: data, metadata and the type's length in UTF-16 code
// units times two (KurrentDB's Event.SizeOnDisk). The type's byte length
// bounds its UTF-16 length from above.
func appendSize(ev domain.EventData) int {
	return len(ev.Data) + len(ev.Metadata) + 2*len(ev.Type)
}

// splitAppend splits events, in order, into groups the server accepts in
// one request: each group's appendSize adds up to at most limit, except
// that an event over the limit on its own forms a group of one. The split
// depends only on the events and the limit, so a retry splits the same
// way.
func splitAppend(events []domain.EventData, limit int) [][]domain.EventData {
	var groups [][]domain.EventData
	start, size := 0, 0
	for i, ev := range events {
		n := appendSize(ev)
		if i > start && size+n > limit {
			groups = append(groups, events[start:i:i])
			start, size = i, 0
		}
		size += n
	}
	return append(groups, events[start:len(events):len(events)])
}
