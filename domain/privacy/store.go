package privacy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
)

var _ domain.EventStore = (*Store)(nil)

// sealedKey is the field of an event's data that holds its envelope.
const sealedKey = "sealed"

// Store is a domain.EventStore that seals the secret fields of room events
// (room.SecretFields) on append and opens them on every read and
// subscription, over the store it wraps (the audit chain store, so the
// chain covers the sealed bytes). Other streams pass through unchanged.
//
// Events of an erased room open to their clear fields: their secret
// fields are empty. A batch holding a room's RoomErased evicts the room's
// key from the keyring's cache, drops the room's events from the opened
// cache (opened.go), and opens none of its events.
type Store struct {
	inner  domain.EventStore
	keys   *Keyring
	opened openedCache
}

// NewStore returns a Store sealing with keys over inner.
func NewStore(inner domain.EventStore, keys *Keyring) *Store {
	return &Store{inner: inner, keys: keys, opened: newOpenedCache(DefaultOpenedCacheSize)}
}

// Append seals the events' secret fields, creating the room's key on its
// first sealed event, and appends them. Appending to an erased room fails
// with an error wrapping ErrErased, and nothing is written.
func (s *Store) Append(ctx context.Context, stream string, expected domain.ExpectedVersion, events ...domain.EventData) (domain.AppendResult, error) {
	sealed, err := s.seal(ctx, stream, events)
	if err != nil {
		return domain.AppendResult{}, err
	}
	res, err := s.inner.Append(ctx, stream, expected, sealed...)
	s.erased(stream, events)
	return res, err
}

// chainedAppender is the audit chain store's AppendChained.
type chainedAppender interface {
	AppendChained(ctx context.Context, stream string, expected domain.ExpectedVersion, events ...domain.EventData) (domain.AppendResult, []domain.EventData, error)
}

// AppendChained is Append for a caller that shows the events it appends
// with their audit chain fields (the gateway's tap), when the inner store
// chains them: it returns the caller's events, in clear, with the
// metadata the chain gave the sealed ones. Over a store that does not
// chain, it returns the events as given.
func (s *Store) AppendChained(ctx context.Context, stream string, expected domain.ExpectedVersion, events ...domain.EventData) (domain.AppendResult, []domain.EventData, error) {
	ca, ok := s.inner.(chainedAppender)
	if !ok {
		res, err := s.Append(ctx, stream, expected, events...)
		return res, events, err
	}
	sealed, err := s.seal(ctx, stream, events)
	if err != nil {
		return domain.AppendResult{}, nil, err
	}
	res, chained, err := ca.AppendChained(ctx, stream, expected, sealed...)
	s.erased(stream, events)
	if err != nil || len(chained) != len(events) {
		return res, chained, err
	}
	out := make([]domain.EventData, len(events))
	for i, ev := range events {
		ev.Metadata = chained[i].Metadata
		out[i] = ev
	}
	return res, out, nil
}

// LogID names the inner store's log (projections.LogIdentifier); "" when
// it cannot tell.
func (s *Store) LogID(ctx context.Context) (string, error) {
	if li, ok := s.inner.(interface {
		LogID(context.Context) (string, error)
	}); ok {
		return li.LogID(ctx)
	}
	return "", nil
}

// erased evicts the room's key when events hold its RoomErased.
func (s *Store) erased(stream string, events []domain.EventData) {
	for _, ev := range events {
		if ev.Type == room.TypeRoomErased {
			if id, ok := room.ParseStream(stream); ok {
				s.keys.Evict(id)
				s.opened.drop(id)
			}
		}
	}
}

// seal returns events with their secret fields sealed; the caller's slice
// is left as it is.
func (s *Store) seal(ctx context.Context, stream string, events []domain.EventData) ([]domain.EventData, error) {
	id, ok := room.ParseStream(stream)
	if !ok {
		return events, nil
	}
	out := events
	copied := false
	var key *Key
	keyFor := func() (*Key, error) {
		if key == nil {
			k, err := s.keys.Key(ctx, id, true)
			if err != nil {
				return nil, err
			}
			key = k
		}
		return key, nil
	}
	set := func(i int, data []byte) {
		if !copied { // the caller's slice is not ours to change
			out, copied = append([]domain.EventData(nil), events...), true
		}
		out[i].Data = data
	}
	for i, ev := range events {
		if len(room.SecretFields(ev.Type)) == 0 {
			continue
		}
		data, changed, exact, err := sealEvent(ev.Type, ev.Data, keyFor, eventAD(stream, ev.ID, ev.Type))
		if errors.Is(err, errNotObject) {
			return nil, &domain.InvalidEventError{Stream: stream, Index: i, Field: "data", Reason: "it is not a JSON object"}
		}
		if err != nil {
			return nil, fmt.Errorf("seal %s %s: %w", ev.Type, stream, err)
		}
		if changed {
			set(i, data)
		}
		if exact { // opening data gives back ev.Data itself
			s.opened.put(id, stream, ev.ID, ev.Type, data, bytes.Clone(ev.Data))
		}
	}
	return out, nil
}

// ReadStream reads and opens a page of stream.
func (s *Store) ReadStream(ctx context.Context, stream string, opts domain.ReadStreamOptions) ([]domain.RecordedEvent, error) {
	evs, err := s.inner.ReadStream(ctx, stream, opts)
	if err != nil {
		return nil, err
	}
	return evs, s.open(ctx, evs)
}

// ReadAll reads and opens a page of the global log.
func (s *Store) ReadAll(ctx context.Context, opts domain.ReadAllOptions) ([]domain.RecordedEvent, error) {
	evs, err := s.inner.ReadAll(ctx, opts)
	if err != nil {
		return nil, err
	}
	return evs, s.open(ctx, evs)
}

// HeadPosition passes through.
func (s *Store) HeadPosition(ctx context.Context) (domain.Position, error) {
	return s.inner.HeadPosition(ctx)
}

// SubscribeAll delivers opened batches.
func (s *Store) SubscribeAll(ctx context.Context, opts domain.SubscribeAllOptions, h domain.Handler) error {
	return s.inner.SubscribeAll(ctx, opts, s.opening(h))
}

// SubscribeStream delivers opened batches of one stream.
func (s *Store) SubscribeStream(ctx context.Context, stream string, after int64, h domain.Handler) error {
	return s.inner.SubscribeStream(ctx, stream, after, s.opening(h))
}

func (s *Store) opening(h domain.Handler) domain.Handler {
	return func(ctx context.Context, batch []domain.RecordedEvent) error {
		if err := s.open(ctx, batch); err != nil {
			return err
		}
		return h(ctx, batch)
	}
}

// open opens the sealed events of evs in place.
func (s *Store) open(ctx context.Context, evs []domain.RecordedEvent) error {
	var erased map[int64]bool
	for _, ev := range evs {
		if ev.Type == room.TypeRoomErased {
			if id, ok := room.ParseStream(ev.Stream); ok {
				if erased == nil {
					erased = map[int64]bool{}
				}
				erased[id] = true
				s.keys.Evict(id)
				s.opened.drop(id)
			}
		}
	}
	for i := range evs {
		ev := &evs[i]
		if len(room.SecretFields(ev.Type)) == 0 || !bytes.Contains(ev.Data, []byte(`"`+sealedKey+`":`)) {
			continue
		}
		id, ok := room.ParseStream(ev.Stream)
		if !ok {
			continue
		}
		data, err := s.openData(ctx, id, erased[id], ev)
		if err != nil {
			return err
		}
		ev.Data = data
	}
	return nil
}

// openData returns ev's data with its secrets restored, in the form the
// writers marshal it, or with its clear fields only when the room is
// erased.
func (s *Store) openData(ctx context.Context, id int64, erased bool, ev *domain.RecordedEvent) (json.RawMessage, error) {
	bad := func(err error) error {
		return fmt.Errorf("open %s %s@%d (position %s): %w", ev.Type, ev.Stream, ev.Version, ev.Position, err)
	}
	var key *Key
	if !erased {
		k, err := s.keys.Key(ctx, id, false)
		if err != nil && !errors.Is(err, ErrErased) && !errors.Is(err, ErrNoKey) {
			return nil, bad(err)
		}
		key = k
	}
	if key == nil {
		data, err := openEvent(*ev, nil)
		if err != nil {
			return nil, bad(err)
		}
		return data, nil
	}
	if data, ok := s.opened.get(ev); ok {
		return data, nil
	}
	data, err := openEvent(*ev, key)
	if err != nil {
		return nil, bad(err)
	}
	s.opened.put(id, ev.Stream, ev.ID, ev.Type, bytes.Clone(ev.Data), bytes.Clone(data))
	return data, nil
}
