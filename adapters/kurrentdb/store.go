package kurrentdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/parleychat/parley/domain"
)

var _ domain.EventStore = (*Store)(nil)

// Defaults for the zero values of Options.
const (
	// DefaultMaxAppendSize is KurrentDB's default MaxAppendSize.
	DefaultMaxAppendSize = 1 << 20
	// DefaultMinRetryDelay is the first wait before resubscribing.
	DefaultMinRetryDelay = 100 * time.Millisecond
	// DefaultMaxRetryDelay caps the wait before resubscribing.
	DefaultMaxRetryDelay = 5 * time.Second
)

// maxBatch caps the events handed to a subscription handler at once.
const maxBatch = 256

// Options configure a Store. The zero value is ready to use.
type Options struct {
	// Logger receives subscription drops and retries and, for a dialled
	// store, the client's own log lines at debug and info level. Nil
	// discards them.
	Logger *slog.Logger
	// MaxAppendSize is the most one append request may carry, counted as
	// the server counts it: data + metadata + 2 × type length per event.
	// Larger appends are split (see Store). Set it to the server's
	// MaxAppendSize; zero or less means DefaultMaxAppendSize.
	MaxAppendSize int
	// MinRetryDelay is the first wait before resubscribing after a dropped
	// subscription; it doubles on each failed attempt up to MaxRetryDelay
	// and starts again once a subscription delivers. Zero or less means
	// DefaultMinRetryDelay and DefaultMaxRetryDelay.
	MinRetryDelay, MaxRetryDelay time.Duration
}

// Store is a domain.EventStore over one KurrentDB client. It is safe for
// concurrent use.
//
// What it adds to the client, and why:
//
//   - Idempotent retries. KurrentDB deduplicates event IDs only when the
//     expected revision points before them (and, for Any, only while they
//     are in a server cache); appending IDs already stored at the stream's
//     end would write them twice. Append therefore first reads the
//     stream's tail (as many events as it appends) and answers a retry
//     itself with the original result, or reports a partial overlap as a
//     *domain.ConflictError, sending nothing in either case.
//   - Read-consistent positions. The server's append reply carries one log
//     position for both numbers (KurrentDB's WriteEvents.cs: "not
//     technically correct"), not the position reads and subscriptions
//     report for the last event, so Append reads its last event back.
//     An append therefore costs three round trips.
//   - Large appends. The server rejects requests whose events add up to
//     more than its MaxAppendSize. Append splits bigger batches into
//     several requests: the first at the caller's expectation, each next
//     one at the exact revision the previous one returned. A split append
//     is NOT atomic: if it fails part-way, the first requests stay
//     written, and a concurrent writer may slip in between them (the
//     later request then fails as a conflict). Retrying a failed split
//     append with the same events and expectation is safe: the tail check
//     finds the requests already written (the split is deterministic) and
//     appends the rest at the exact revision after them. One event over
//     the server's limit cannot be split; the server rejects it and Append
//     reports domain.ETOOLARGE. To accept a whole domain.MaxEventSize
//     event a server needs a MaxAppendSize of at least 1 MiB + 400 bytes
//     (KURRENTDB_MAX_APPEND_SIZE=2097152, say).
//   - Filtered ReadAll. The v4 client's ReadAll sends no server-side filter,
//     so ReadAll pages through $all and filters here; a selective prefix
//     can mean reading much of the log. SubscribeAll uses the server's
//     stream-prefix filter. Events of system streams ("$...") and events
//     whose type starts with "$" are never returned by ReadAll or
//     SubscribeAll.
//   - Resilient subscriptions. SubscribeAll and SubscribeStream resubscribe
//     after a drop from the last delivered event, with exponential backoff.
//     The server starts a catch-up subscription after the position or
//     revision it is given; the store also skips anything at or before its
//     checkpoint, so one call never delivers an event twice.
//
// Limits of the v4 client: when node discovery fails (maxDiscoverAttempts
// in the connection string, 10 by default, tried 100 ms apart) the client
// closes itself for good, so a server outage longer than that window
// leaves the Store unusable: operations fail with domain.EUNAVAILABLE,
// subscriptions return, and the process should be restarted (raise
// maxDiscoverAttempts to ride out longer outages). Discovery ignores
// contexts. Stream reads need KurrentDB 22.6 or later, which reports $all
// positions on stream reads. Close the store only after every
// subscription has returned: the client panics on errors that arrive
// after it is closed.
type Store struct {
	client        *esdb.Client
	owned         bool // Close closes client
	logger        *slog.Logger
	maxAppendSize int
	minDelay      time.Duration
	maxDelay      time.Duration

	// The client's subscribe calls, replaced by fakes in tests.
	subscribeToAll    func(ctx context.Context, opts esdb.SubscribeToAllOptions) (subscription, error)
	subscribeToStream func(ctx context.Context, stream string, opts esdb.SubscribeToStreamOptions) (subscription, error)
}

// New returns a store over client. The client stays the caller's: Close
// does not close it.
func New(client *esdb.Client, opts Options) *Store {
	s := &Store{
		client:        client,
		logger:        opts.Logger,
		maxAppendSize: opts.MaxAppendSize,
		minDelay:      opts.MinRetryDelay,
		maxDelay:      opts.MaxRetryDelay,
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.maxAppendSize <= 0 {
		s.maxAppendSize = DefaultMaxAppendSize
	}
	if s.minDelay <= 0 {
		s.minDelay = DefaultMinRetryDelay
	}
	if s.maxDelay <= 0 {
		s.maxDelay = DefaultMaxRetryDelay
	}
	s.maxDelay = max(s.maxDelay, s.minDelay)
	s.subscribeToAll = func(ctx context.Context, opts esdb.SubscribeToAllOptions) (subscription, error) {
		sub, err := client.SubscribeToAll(ctx, opts)
		if err != nil {
			return nil, err // not a nil *esdb.Subscription in a non-nil interface
		}
		return sub, nil
	}
	s.subscribeToStream = func(ctx context.Context, stream string, opts esdb.SubscribeToStreamOptions) (subscription, error) {
		sub, err := client.SubscribeToStream(ctx, stream, opts)
		if err != nil {
			return nil, err
		}
		return sub, nil
	}
	return s
}

// Dial parses a KurrentDB connection string (esdb://host:2113?tls=false,
// say; see esdb.ParseConnectionString), creates a client that logs to
// opts.Logger, and checks that the server answers by reading the last
// event of $all. The connection string may hold a password; it never
// appears in errors or logs. Close the store to close the client.
func Dial(ctx context.Context, connString string, opts Options) (*Store, error) {
	cfg, err := esdb.ParseConnectionString(connString)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // url.Error repeats the whole string, password included
		}
		return nil, fmt.Errorf("kurrentdb: parse connection string: %w", err)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg.Logger = clientLogger(logger)
	client, err := esdb.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("kurrentdb: create client: %w", err)
	}
	s := New(client, opts)
	s.owned = true
	if err := s.ping(ctx); err != nil {
		_ = client.Close()
		return nil, err
	}
	return s, nil
}

// ping reads the last event of $all.
func (s *Store) ping(ctx context.Context) error {
	rs, err := s.client.ReadAll(ctx, esdb.ReadAllOptions{Direction: esdb.Backwards, From: esdb.End{}}, 1)
	if err != nil {
		return mapError(ctx, err, "connect")
	}
	defer rs.Close()
	if _, err := rs.Recv(); err != nil && !errors.Is(err, io.EOF) {
		return mapError(ctx, err, "connect")
	}
	return nil
}

// SubscriptionBatch is the most events a subscription hands its handler at
// once: a batch of that size means the subscriber is behind the log.
func (s *Store) SubscriptionBatch() int { return maxBatch }

// Close closes the client if Dial created it. Call it after every
// subscription has returned.
func (s *Store) Close() error {
	if !s.owned {
		return nil
	}
	if err := s.client.Close(); err != nil {
		return fmt.Errorf("kurrentdb: close client: %w", err)
	}
	return nil
}

// clientLogger routes the client's log lines to l. The client logs every
// failed or cancelled call, subscription closes included, as an error, so
// its errors and warnings go out at info level and the rest at debug; the
// store logs what matters itself.
func clientLogger(l *slog.Logger) esdb.LoggingFunc {
	return func(level esdb.LogLevel, format string, args ...any) {
		lvl := slog.LevelDebug
		if level == esdb.LogError || level == esdb.LogWarn {
			lvl = slog.LevelInfo
		}
		ctx := context.Background()
		if !l.Enabled(ctx, lvl) {
			return
		}
		l.Log(ctx, lvl, "kurrentdb client: "+fmt.Sprintf(format, args...), "client_level", level)
	}
}

// toEventData converts an event to append. The ID always comes from the
// envelope: the client would invent one only for the nil UUID, which
// domain.ValidateAppend rejects.
func toEventData(ev domain.EventData) esdb.EventData {
	return esdb.EventData{
		EventID:     uuid.UUID(ev.ID),
		EventType:   ev.Type,
		ContentType: esdb.ContentTypeJson,
		Data:        ev.Data,
		Metadata:    ev.Metadata,
	}
}

// toRecorded converts an event the client read or received.
func toRecorded(r *esdb.RecordedEvent) domain.RecordedEvent {
	ev := domain.RecordedEvent{
		ID:         domain.UUID(r.EventID),
		Type:       r.EventType,
		Data:       r.Data,
		Stream:     r.StreamID,
		Version:    int64(r.EventNumber),
		Position:   toPosition(r.Position),
		RecordedAt: r.CreatedDate,
	}
	if len(r.UserMetadata) > 0 {
		ev.Metadata = r.UserMetadata
	}
	return ev
}

func toPosition(p esdb.Position) domain.Position {
	return domain.Position{Commit: p.Commit, Prepare: p.Prepare}
}

func fromPosition(p domain.Position) esdb.Position {
	return esdb.Position{Commit: p.Commit, Prepare: p.Prepare}
}

// expectedRevision maps an expectation onto the client's.
func expectedRevision(e domain.ExpectedVersion) esdb.ExpectedRevision {
	switch {
	case e.IsNoStream():
		return esdb.NoStream{}
	case e.IsStreamExists():
		return esdb.StreamExists{}
	}
	if v, ok := e.Version(); ok {
		return esdb.Revision(uint64(v))
	}
	return esdb.Any{}
}

// isSystem reports whether an event belongs to KurrentDB rather than to
// Parley: a system stream's event, or a system event type such as a
// tombstone or a link.
func isSystem(r *esdb.RecordedEvent) bool {
	return len(r.StreamID) > 0 && r.StreamID[0] == '$' || len(r.EventType) > 0 && r.EventType[0] == '$'
}
