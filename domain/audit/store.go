package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/parleychat/parley/domain"
)

var _ domain.EventStore = (*ChainingStore)(nil)

// Defaults for the zero values of ChainOptions.
const (
	DefaultCacheSize  = 10000
	DefaultMaxRetries = 100
)

// ChainOptions configure a ChainingStore. The zero value is ready to use.
type ChainOptions struct {
	// CacheSize is how many streams' last known hashes are kept, least
	// recently used dropped first. A miss costs one read of one event.
	// Zero or less means DefaultCacheSize.
	CacheSize int
	// MaxRetries bounds how often an Any or StreamExists append reads the
	// stream's head again after another writer appended first. Zero or
	// less means DefaultMaxRetries.
	MaxRetries int
	// TrustTypes lists event types whose IDs are never reused with other
	// content (the chat service's AnswerChunk: one ID per answer and
	// sequence number, written by one pipeline). After a successful append
	// made only of such events, the hash just computed is cached, so the
	// next append to the stream needs no read; otherwise the cache is
	// filled only from what the store returns (see ChainingStore).
	TrustTypes []string
}

// ChainingStore is a domain.EventStore that writes the audit chain (see
// the package documentation) into every event it appends, and passes every
// read through to the store it wraps unchanged.
//
// Appends at Exact(v) and NoStream, the chat service's, chain from the hash
// of version v (Genesis for NoStream) and go to the inner store with the
// caller's expectation, so the inner store's conflicts and idempotent
// retries behave as before: a retry recomputes the same metadata (the
// chain store adds nothing that varies, such as a time), and the inner
// store recognises the IDs anyway. The hash of version v comes from a
// cache of each stream's last known event, or from reading event v.
// Appends with Any or StreamExists read the stream's last event and append
// at exactly its version, reading again (up to MaxRetries times) when
// another writer got there first; a retry of such an append is recognised
// here by finding its IDs in the stream.
//
// The cache is filled from what the inner store returns (this store's own
// reads and the events callers read through ReadStream), and from what an
// append sent only when all its events are of ChainOptions.TrustTypes:
// a store answers an append whose IDs it holds already with the original
// result, and the events it holds may differ from those sent (the chat
// service gives every possible ending of an answer the same ID), so
// chaining from the sent ones could break the chain, unless their types
// promise that an ID is never reused with other content.
//
// Writers' metadata must be a JSON object (or empty or null) without
// prev_hash or hash fields of its own.
type ChainingStore struct {
	inner      domain.EventStore
	cache      *headCache
	maxRetries int
	trust      []string
}

// NewChainingStore returns a ChainingStore over inner. It starts nothing
// and needs no closing; close inner as before.
func NewChainingStore(inner domain.EventStore, opts ChainOptions) *ChainingStore {
	if opts.CacheSize <= 0 {
		opts.CacheSize = DefaultCacheSize
	}
	if opts.MaxRetries <= 0 {
		opts.MaxRetries = DefaultMaxRetries
	}
	return &ChainingStore{inner: inner, cache: newHeadCache(opts.CacheSize), maxRetries: opts.MaxRetries, trust: slices.Clone(opts.TrustTypes)}
}

// Append implements domain.Appender: it chains events after the stream's
// last event and appends them to the inner store.
func (s *ChainingStore) Append(ctx context.Context, stream string, expected domain.ExpectedVersion, events ...domain.EventData) (domain.AppendResult, error) {
	res, _, err := s.AppendChained(ctx, stream, expected, events...)
	return res, err
}

// AppendChained is Append that also returns the events as it appended
// them, their metadata ending with the chain fields: what a caller that
// shows events before reading them back (the gateway's tap) needs to show
// their hashes. For an idempotent retry of events whose IDs are never
// reused with other content (ChainOptions.TrustTypes), they are the events
// stored; for others the store may hold what an earlier append wrote.
func (s *ChainingStore) AppendChained(ctx context.Context, stream string, expected domain.ExpectedVersion, events ...domain.EventData) (domain.AppendResult, []domain.EventData, error) {
	if err := domain.ValidateAppend(stream, events); err != nil {
		return domain.AppendResult{}, nil, err
	}
	bases, err := writerMetadata(stream, events)
	if err != nil {
		return domain.AppendResult{}, nil, err
	}
	if expected.IsNoStream() {
		chained, last := chain(stream, domain.NoVersion, Genesis, events, bases)
		res, err := s.appendTrusting(ctx, stream, expected, chained, last)
		return res, chained, err
	}
	if v, ok := expected.Version(); ok {
		prev, err := s.hashAt(ctx, stream, expected, v)
		if err != nil {
			return domain.AppendResult{}, nil, err
		}
		chained, last := chain(stream, v, prev, events, bases)
		res, err := s.appendTrusting(ctx, stream, expected, chained, last)
		return res, chained, err
	}
	return s.appendAtHead(ctx, stream, expected, events, bases)
}

// appendTrusting appends chained events and, when they are all of
// trusted types, caches last, the hash of the last one. A conflict
// forgets the stream's cached head: the stream is not where this store
// thought, and may even be shorter (a database that lost its last
// unflushed commits in a crash), so the next append reads it.
func (s *ChainingStore) appendTrusting(ctx context.Context, stream string, expected domain.ExpectedVersion, chained []domain.EventData, last Hash) (domain.AppendResult, error) {
	res, err := s.inner.Append(ctx, stream, expected, chained...)
	if errors.Is(err, domain.ErrConflict) {
		s.cache.forget(stream)
	}
	if err != nil || len(s.trust) == 0 {
		return res, err
	}
	for _, ev := range chained {
		if !slices.Contains(s.trust, ev.Type) {
			return res, nil
		}
	}
	s.cache.put(stream, res.Version, last)
	return res, nil
}

// appendAtHead appends an Any or StreamExists append at the exact version
// of the stream's last event.
func (s *ChainingStore) appendAtHead(ctx context.Context, stream string, expected domain.ExpectedVersion, events []domain.EventData, bases []json.RawMessage) (domain.AppendResult, []domain.EventData, error) {
	for attempt := 0; ; attempt++ {
		head, prev, err := s.head(ctx, stream)
		if err != nil {
			return domain.AppendResult{}, nil, err
		}
		if !expected.Holds(head) {
			return domain.AppendResult{}, nil, &domain.ConflictError{Stream: stream, Expected: expected, Actual: head}
		}
		chained, _ := chain(stream, head, prev, events, bases)
		res, err := s.inner.Append(ctx, stream, domain.Exact(head), chained...)
		var ce *domain.ConflictError
		if !errors.As(err, &ce) {
			return res, chained, err
		}
		if ce.Actual == head || ce.Reason != "" {
			// The version held, so the event IDs are the trouble: stored
			// already (a retry) or partly (a conflict).
			res, found, err := s.findRetry(ctx, stream, expected, events)
			if err != nil || found {
				return res, chained, err
			}
			ce.Expected = expected
			return domain.AppendResult{}, nil, ce
		}
		if attempt >= s.maxRetries {
			ce.Expected = expected
			ce.Reason = fmt.Sprintf("other writers appended first %d times in a row", attempt+1)
			return domain.AppendResult{}, nil, ce
		}
		if err := ctx.Err(); err != nil {
			return domain.AppendResult{}, nil, err
		}
	}
}

// hashAt returns the hash of stream's event at version v, for an append
// expecting exp (Exact(v)); a missing event is that append's conflict.
func (s *ChainingStore) hashAt(ctx context.Context, stream string, exp domain.ExpectedVersion, v int64) (Hash, error) {
	if h, ok := s.cache.get(stream, v); ok {
		return h, nil
	}
	for attempt := 0; ; attempt++ {
		evs, err := s.inner.ReadStream(ctx, stream, domain.ReadStreamOptions{From: v, Limit: 1})
		if errors.Is(err, domain.ErrStreamNotFound) {
			return Hash{}, &domain.ConflictError{Stream: stream, Expected: exp, Actual: domain.NoVersion}
		}
		if err != nil {
			return Hash{}, fmt.Errorf("audit: append to %s: read version %d to chain after it: %w", stream, v, err)
		}
		if len(evs) == 1 && evs[0].Version == v {
			return s.hashOf(ctx, evs[0])
		}
		head, _, err := s.head(ctx, stream)
		if err != nil {
			return Hash{}, err
		}
		if head < v || attempt >= 2 {
			return Hash{}, &domain.ConflictError{Stream: stream, Expected: exp, Actual: head}
		}
		// The stream reached v between the two reads: read v again.
	}
}

// head returns the version and hash of stream's last event, or NoVersion
// and Genesis when the stream has none.
func (s *ChainingStore) head(ctx context.Context, stream string) (int64, Hash, error) {
	evs, err := s.inner.ReadStream(ctx, stream, domain.ReadStreamOptions{Direction: domain.Backward, From: domain.EndOfStream, Limit: 1})
	if errors.Is(err, domain.ErrStreamNotFound) {
		return domain.NoVersion, Genesis, nil
	}
	if err != nil {
		return 0, Hash{}, fmt.Errorf("audit: append to %s: read its last event to chain after it: %w", stream, err)
	}
	if len(evs) == 0 {
		return domain.NoVersion, Genesis, nil
	}
	h, err := s.hashOf(ctx, evs[0])
	return evs[0].Version, h, err
}

// hashOf returns the hash of a stored event and remembers it: its hash
// field, or for an event written before the chain, the hash computed over
// the unchained events back to the last chained one (or the start).
func (s *ChainingStore) hashOf(ctx context.Context, ev domain.RecordedEvent) (Hash, error) {
	if h, ok := storedHash(ev); ok {
		s.cache.put(ev.Stream, ev.Version, h)
		return h, nil
	}
	// Collect the unchained run ending at ev, newest first.
	run := []domain.RecordedEvent{ev}
	prev := Genesis
	if ev.Version > 0 {
		back := domain.ReadStreamOptions{Direction: domain.Backward, From: ev.Version - 1, Limit: domain.DefaultReadLimit}
		for p, err := range domain.StreamEvents(ctx, s.inner, ev.Stream, back) {
			if err != nil {
				return Hash{}, fmt.Errorf("audit: append to %s: read its unchained events to chain after them: %w", ev.Stream, err)
			}
			if h, ok := storedHash(p); ok {
				prev = h
				break
			}
			run = append(run, p)
		}
	}
	slices.Reverse(run)
	for _, p := range run {
		prev = inspect(p, prev).computed
	}
	s.cache.put(ev.Stream, ev.Version, prev)
	return prev, nil
}

// findRetry looks for events already stored in stream, in order, where
// expected would have put them: then the append is an idempotent retry and
// found is true with the original result. A partial overlap is a conflict.
func (s *ChainingStore) findRetry(ctx context.Context, stream string, expected domain.ExpectedVersion, events []domain.EventData) (domain.AppendResult, bool, error) {
	first := int64(-1)
	var head int64 = domain.NoVersion
	back := domain.ReadStreamOptions{Direction: domain.Backward, From: domain.EndOfStream, Limit: domain.DefaultReadLimit}
	for ev, err := range domain.StreamEvents(ctx, s.inner, stream, back) {
		if err != nil {
			return domain.AppendResult{}, false, fmt.Errorf("audit: append to %s: look for a retried append: %w", stream, err)
		}
		if head == domain.NoVersion {
			head = ev.Version
		}
		if ev.ID == events[0].ID {
			first = ev.Version
			break
		}
	}
	if first < 0 {
		return domain.AppendResult{}, false, nil
	}
	stored, err := s.inner.ReadStream(ctx, stream, domain.ReadStreamOptions{From: first, Limit: len(events)})
	if err != nil {
		return domain.AppendResult{}, false, fmt.Errorf("audit: append to %s: look for a retried append: %w", stream, err)
	}
	conflict := &domain.ConflictError{Stream: stream, Expected: expected, Actual: head}
	if len(stored) < len(events) {
		conflict.Reason = "some of the event IDs are already in the stream and some are not"
		return domain.AppendResult{}, false, conflict
	}
	for i, ev := range events {
		if stored[i].ID != ev.ID {
			conflict.Reason = "some of the event IDs are already in the stream, but not in this order or not all of them"
			return domain.AppendResult{}, false, conflict
		}
	}
	if !expected.Holds(first - 1) {
		conflict.Reason = "the event IDs are already in the stream at other versions"
		return domain.AppendResult{}, false, conflict
	}
	last := stored[len(events)-1]
	return domain.AppendResult{Version: last.Version, Position: last.Position}, true, nil
}

// writerMetadata checks each event's metadata, which ValidateAppend has
// found to be JSON, can carry the chain and returns it normalised as
// domain.SplitChainFields will return it.
func writerMetadata(stream string, events []domain.EventData) ([]json.RawMessage, error) {
	bases := make([]json.RawMessage, len(events))
	for i, ev := range events {
		bad := func(reason string) error {
			return &domain.InvalidEventError{Stream: stream, Index: i, Field: "metadata", Reason: reason}
		}
		b := json.RawMessage(bytes.TrimSpace(ev.Metadata))
		if len(b) == 0 || string(b) == "null" {
			bases[i] = json.RawMessage("{}")
			continue
		}
		if b[0] != '{' {
			return nil, bad("it is not a JSON object; the audit chain adds its fields to an object")
		}
		// The common case, checked without decoding: an object (the
		// caller has checked it is JSON, domain.ValidateAppend) in which no
		// key can be "hash" or "prev_hash" (neither appears, nor any
		// escape that could spell one).
		if !bytes.Contains(b, []byte(`hash"`)) && !bytes.ContainsRune(b, '\\') {
			bases[i] = b
			continue
		}
		var fields map[string]json.RawMessage
		if json.Unmarshal(b, &fields) != nil {
			return nil, bad("it is not a JSON object; the audit chain adds its fields to an object")
		}
		for _, k := range []string{"prev_hash", "hash"} {
			if _, ok := fields[k]; ok {
				return nil, bad(fmt.Sprintf("it has a %q field; the audit chain writes that field itself", k))
			}
		}
		bases[i] = b
	}
	return bases, nil
}

// chain returns events with chain fields, at the versions after version
// after, the first linked to prev, and the hash of the last.
func chain(stream string, after int64, prev Hash, events []domain.EventData, bases []json.RawMessage) ([]domain.EventData, Hash) {
	out := make([]domain.EventData, len(events))
	for i, ev := range events {
		h := EventHash(prev, stream, after+1+int64(i), ev.ID, ev.Type, ev.Data, bases[i])
		meta, err := domain.WithChainFields(bases[i], prev.String(), h.String())
		if err != nil {
			// writerMetadata accepted bases[i] as an object: unreachable.
			panic(fmt.Sprintf("audit: chain fields for a checked object: %v", err))
		}
		ev.Metadata = meta
		out[i] = ev
		prev = h
	}
	return out, prev
}

// ReadStream implements domain.StreamReader: the inner store's page,
// unchanged. The page's newest chained event refreshes the hash cache;
// after a read of some types (opts.Types) it need not be the stream's
// last, but the cache keeps a hash as its own version's only, and never
// for an older version than it holds, so an append at the last version
// still finds that version's hash, or reads it.
func (s *ChainingStore) ReadStream(ctx context.Context, stream string, opts domain.ReadStreamOptions) ([]domain.RecordedEvent, error) {
	evs, err := s.inner.ReadStream(ctx, stream, opts)
	if err == nil && len(evs) > 0 {
		newest := evs[len(evs)-1]
		if opts.Direction == domain.Backward {
			newest = evs[0]
		}
		if h, ok := storedHash(newest); ok {
			s.cache.put(stream, newest.Version, h)
		}
	}
	return evs, err
}

// ReadAll implements domain.AllReader by passing through.
func (s *ChainingStore) ReadAll(ctx context.Context, opts domain.ReadAllOptions) ([]domain.RecordedEvent, error) {
	return s.inner.ReadAll(ctx, opts)
}

// HeadPosition implements domain.AllReader by passing through.
func (s *ChainingStore) HeadPosition(ctx context.Context) (domain.Position, error) {
	return s.inner.HeadPosition(ctx)
}

// SubscribeAll implements domain.Subscriber by passing through.
func (s *ChainingStore) SubscribeAll(ctx context.Context, opts domain.SubscribeAllOptions, h domain.Handler) error {
	return s.inner.SubscribeAll(ctx, opts, h)
}

// SubscribeStream implements domain.Subscriber by passing through.
func (s *ChainingStore) SubscribeStream(ctx context.Context, stream string, after int64, h domain.Handler) error {
	return s.inner.SubscribeStream(ctx, stream, after, h)
}

// LogID names the inner store's log, when it can (see
// projections.LogIdentifier): the chain changes nothing about which log
// the events are in. It returns "" when the inner store cannot tell.
func (s *ChainingStore) LogID(ctx context.Context) (string, error) {
	if li, ok := s.inner.(interface {
		LogID(context.Context) (string, error)
	}); ok {
		return li.LogID(ctx)
	}
	return "", nil
}
