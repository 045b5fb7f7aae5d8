package domaintest

import (
	"context"
	"sync"

	"github.com/parleychat/parley/domain"
)

// SwapStore passes every call to an inner store that a test may replace
// at any time (Set): a database that comes back from a crash without its
// last unflushed commits is the same store holding less.
type SwapStore struct {
	mu    sync.Mutex
	inner domain.EventStore
}

var _ domain.EventStore = (*SwapStore)(nil)

// NewSwapStore returns a SwapStore over inner.
func NewSwapStore(inner domain.EventStore) *SwapStore { return &SwapStore{inner: inner} }

// Set replaces the inner store.
func (s *SwapStore) Set(inner domain.EventStore) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inner = inner
}

func (s *SwapStore) get() domain.EventStore {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inner
}

// Append implements domain.Appender.
func (s *SwapStore) Append(ctx context.Context, stream string, exp domain.ExpectedVersion, evs ...domain.EventData) (domain.AppendResult, error) {
	return s.get().Append(ctx, stream, exp, evs...)
}

// ReadStream implements domain.StreamReader.
func (s *SwapStore) ReadStream(ctx context.Context, stream string, opts domain.ReadStreamOptions) ([]domain.RecordedEvent, error) {
	return s.get().ReadStream(ctx, stream, opts)
}

// ReadAll implements domain.AllReader.
func (s *SwapStore) ReadAll(ctx context.Context, opts domain.ReadAllOptions) ([]domain.RecordedEvent, error) {
	return s.get().ReadAll(ctx, opts)
}

// HeadPosition implements domain.AllReader.
func (s *SwapStore) HeadPosition(ctx context.Context) (domain.Position, error) {
	return s.get().HeadPosition(ctx)
}

// SubscribeAll implements domain.Subscriber, on the store inner at the call.
func (s *SwapStore) SubscribeAll(ctx context.Context, opts domain.SubscribeAllOptions, h domain.Handler) error {
	return s.get().SubscribeAll(ctx, opts, h)
}

// SubscribeStream implements domain.Subscriber, on the store inner at the call.
func (s *SwapStore) SubscribeStream(ctx context.Context, stream string, after int64, h domain.Handler) error {
	return s.get().SubscribeStream(ctx, stream, after, h)
}

// Truncated returns a new store, made by fresh, holding the first n
// events of stream in src (all of them when it has fewer): what a
// database that lost the rest kept. The events keep their IDs, data and
// metadata.
func Truncated(ctx context.Context, src domain.StreamReader, stream string, n int, fresh domain.EventStore) (domain.EventStore, error) {
	evs, err := src.ReadStream(ctx, stream, domain.ReadStreamOptions{Limit: n})
	if err != nil {
		return nil, err
	}
	for _, ev := range evs[:min(n, len(evs))] {
		if _, err := fresh.Append(ctx, stream, domain.Exact(ev.Version-1), domain.EventData{ID: ev.ID, Type: ev.Type, Data: ev.Data, Metadata: ev.Metadata}); err != nil {
			return nil, err
		}
	}
	return fresh, nil
}
