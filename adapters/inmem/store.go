package inmem

import (
	"context"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/parleychat/parley/domain"
)

var _ domain.EventStore = (*Store)(nil)

// Store is an in-memory event store. The zero value is not usable; call New.
type Store struct {
	now func() time.Time

	mu      sync.Mutex
	all     []domain.RecordedEvent           // the global log, in position order
	streams map[string][]int                 // stream → indexes into all, by version
	ids     map[string]map[domain.UUID]int64 // stream → event ID → version
	changed chan struct{}                    // closed and replaced on every append
}

// New returns an empty store. now stamps RecordedAt; nil means time.Now.
func New(now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{
		now:     now,
		streams: make(map[string][]int),
		ids:     make(map[string]map[domain.UUID]int64),
		changed: make(chan struct{}),
	}
}

// Append implements domain.Appender.
func (s *Store) Append(ctx context.Context, stream string, expected domain.ExpectedVersion, events ...domain.EventData) (domain.AppendResult, error) {
	if err := domain.ValidateAppend(stream, events); err != nil {
		return domain.AppendResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return domain.AppendResult{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()

	idx := s.streams[stream]
	current := int64(len(idx)) - 1
	if res, ok, err := s.retried(stream, expected, current, events); ok || err != nil {
		return res, err
	}
	if !expected.Holds(current) {
		return domain.AppendResult{}, &domain.ConflictError{Stream: stream, Expected: expected, Actual: current}
	}
	ids := s.ids[stream]
	if ids == nil {
		ids = make(map[domain.UUID]int64)
		s.ids[stream] = ids
	}
	now := s.now().UTC()
	for _, ev := range events {
		current++
		pos := uint64(len(s.all) + 1)
		s.all = append(s.all, domain.RecordedEvent{
			ID:         ev.ID,
			Type:       ev.Type,
			Data:       slices.Clone(ev.Data),
			Metadata:   slices.Clone(ev.Metadata),
			Stream:     stream,
			Version:    current,
			Position:   domain.Position{Commit: pos, Prepare: pos},
			RecordedAt: now,
		})
		idx = append(idx, len(s.all)-1)
		ids[ev.ID] = current
	}
	s.streams[stream] = idx
	close(s.changed)
	s.changed = make(chan struct{})
	return domain.AppendResult{Version: current, Position: s.all[len(s.all)-1].Position}, nil
}

// retried recognises an idempotent retry: every ID already stored, at
// consecutive versions, where the expectation would have put them. It
// reports ok with the original result, or a conflict for a partial overlap.
func (s *Store) retried(stream string, expected domain.ExpectedVersion, current int64, events []domain.EventData) (domain.AppendResult, bool, error) {
	ids := s.ids[stream]
	found := 0
	for _, ev := range events {
		if _, ok := ids[ev.ID]; ok {
			found++
		}
	}
	if found == 0 {
		return domain.AppendResult{}, false, nil
	}
	conflict := func(reason string) error {
		return &domain.ConflictError{Stream: stream, Expected: expected, Actual: current, Reason: reason}
	}
	if found < len(events) {
		return domain.AppendResult{}, false, conflict("some of the event IDs are already in the stream and some are not")
	}
	first := ids[events[0].ID]
	for i, ev := range events {
		if ids[ev.ID] != first+int64(i) {
			return domain.AppendResult{}, false, conflict("the event IDs are already in the stream in another order")
		}
	}
	if !expected.Holds(first - 1) {
		return domain.AppendResult{}, false, conflict("the event IDs are already in the stream at other versions")
	}
	last := s.all[s.streams[stream][first+int64(len(events))-1]]
	return domain.AppendResult{Version: last.Version, Position: last.Position}, true, nil
}

// ReadStream implements domain.StreamReader.
func (s *Store) ReadStream(ctx context.Context, stream string, opts domain.ReadStreamOptions) ([]domain.RecordedEvent, error) {
	if err := domain.ValidateStreamName(stream); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	idx := s.streams[stream]
	if len(idx) == 0 {
		return nil, &domain.StreamNotFoundError{Stream: stream}
	}
	limit := domain.ReadLimit(opts.Limit)
	var out []domain.RecordedEvent
	if opts.Direction == domain.Backward {
		from := min(opts.From, int64(len(idx))-1)
		for v := from; v >= 0 && len(out) < limit; v-- {
			if ev := s.all[idx[v]]; opts.Selects(ev.Type) {
				out = append(out, ev)
			}
		}
		return out, nil
	}
	for v := max(opts.From, 0); v < int64(len(idx)) && len(out) < limit; v++ {
		if ev := s.all[idx[v]]; opts.Selects(ev.Type) {
			out = append(out, ev)
		}
	}
	return out, nil
}

// ReadAll implements domain.AllReader.
func (s *Store) ReadAll(ctx context.Context, opts domain.ReadAllOptions) ([]domain.RecordedEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.readAllLocked(opts.After, opts.StreamPrefix, domain.ReadLimit(opts.Limit)), nil
}

// HeadPosition implements domain.AllReader.
func (s *Store) HeadPosition(ctx context.Context) (domain.Position, error) {
	if err := ctx.Err(); err != nil {
		return domain.Position{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.all) == 0 {
		return domain.Start, nil
	}
	return s.all[len(s.all)-1].Position, nil
}

func (s *Store) readAllLocked(after domain.Position, prefix string, limit int) []domain.RecordedEvent {
	i := sort.Search(len(s.all), func(i int) bool { return after.Less(s.all[i].Position) })
	var out []domain.RecordedEvent
	for ; i < len(s.all) && len(out) < limit; i++ {
		if strings.HasPrefix(s.all[i].Stream, prefix) {
			out = append(out, s.all[i])
		}
	}
	return out
}

// SubscribeAll implements domain.Subscriber.
func (s *Store) SubscribeAll(ctx context.Context, opts domain.SubscribeAllOptions, h domain.Handler) error {
	after := opts.After
	for {
		s.mu.Lock()
		batch := s.readAllLocked(after, opts.StreamPrefix, domain.DefaultReadLimit)
		changed := s.changed
		s.mu.Unlock()
		if len(batch) > 0 {
			if err := h(ctx, batch); err != nil {
				return err
			}
			after = batch[len(batch)-1].Position
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

// SubscribeStream implements domain.Subscriber.
func (s *Store) SubscribeStream(ctx context.Context, stream string, after int64, h domain.Handler) error {
	if err := domain.ValidateStreamName(stream); err != nil {
		return err
	}
	for {
		s.mu.Lock()
		idx := s.streams[stream]
		var batch []domain.RecordedEvent
		for v := max(after+1, 0); v < int64(len(idx)) && len(batch) < domain.DefaultReadLimit; v++ {
			batch = append(batch, s.all[idx[v]])
		}
		changed := s.changed
		s.mu.Unlock()
		if len(batch) > 0 {
			if err := h(ctx, batch); err != nil {
				return err
			}
			after = batch[len(batch)-1].Version
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}
