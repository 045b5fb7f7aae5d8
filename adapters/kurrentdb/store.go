package kurrentdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/parleychat/parley/domain"
)

var _ domain.EventStore = (*Store)(nil)

// Defaults for the zero values of Options, and of the connection string.
const (
	// DefaultMaxAppendSize is KurrentDB's default MaxAppendSize since
	// 24.10: 256 MiB, a transaction file chunk (TFConsts.ChunkSize), which
	// is also the most the server accepts.
	DefaultMaxAppendSize = 256 << 20
	// DefaultMaxAppendEventSize is KurrentDB's default MaxAppendEventSize:
	// 16 MiB, its largest log record (TFConsts.MaxLogRecordSize), which is
	// also the most the server accepts.
	DefaultMaxAppendEventSize = 16 << 20
	// DefaultMinRetryDelay is the first wait before resubscribing or
	// rebuilding the client.
	DefaultMinRetryDelay = 100 * time.Millisecond
	// DefaultMaxRetryDelay caps the wait before resubscribing or
	// rebuilding the client.
	DefaultMaxRetryDelay = 5 * time.Second
	// DefaultMaxDiscoverAttempts is the client's maxDiscoverAttempts when
	// the connection string does not set it (the client's own default is
	// 10): the store rebuilds a client whose discovery failed, with
	// backoff, so a long discovery only delays reporting the outage.
	DefaultMaxDiscoverAttempts = 3
)

// maxBatch caps the events handed to a subscription handler at once.
const maxBatch = 256

// Options configure a Store. The zero value is ready to use.
type Options struct {
	// Logger receives lost and regained connections, subscription drops
	// and retries, and the client's own log lines at debug and info
	// level. Nil discards them.
	Logger *slog.Logger
	// MaxAppendSize is the most one append request may carry, counted as
	// the server counts it: data + metadata + 2 × type length per event.
	// Larger appends are split (see Store). Set it to the server's
	// MaxAppendSize (KURRENTDB_MAX_APPEND_SIZE); zero or less means
	// DefaultMaxAppendSize.
	MaxAppendSize int
	// MaxAppendEventSize is the largest event the server accepts, counted
	// the same way; a larger one is refused before anything is sent. Set
	// it to the server's MaxAppendEventSize (KURRENTDB_MAX_APPEND_EVENT_SIZE);
	// zero or less means DefaultMaxAppendEventSize.
	MaxAppendEventSize int
	// MinRetryDelay is the first wait before resubscribing after a dropped
	// subscription, and before rebuilding a failed client; it doubles on
	// each failed attempt up to MaxRetryDelay, and a subscription starts
	// again from MinRetryDelay once it delivers. Zero or less means
	// DefaultMinRetryDelay and DefaultMaxRetryDelay.
	MinRetryDelay, MaxRetryDelay time.Duration
}

// Store is a domain.EventStore over KurrentDB through the v4 client. It
// is safe for concurrent use.
//
// What it adds to the client, and why:
//
//   - A store that outlives its server. Every client call runs in a
//     goroutine the store owns and returns when its context ends, even
//     where the client ignores contexts (see conn.go for the client's
//     failure modes). When the client loses its server (an Unavailable
//     reply, failed discovery, a closed client) the store retires it and
//     builds another with backoff (MinRetryDelay doubling to
//     MaxRetryDelay), checking it with a read of $all before use.
//     Meanwhile calls fail at once with domain.EUNAVAILABLE and Check
//     says why; subscriptions resume where they stopped once a client
//     works again. Close never panics and waits for every goroutine the
//     store started.
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
//     An append therefore costs three round trips. Those reads, the tail
//     read and the read-back, ask for the leader ("requires-leader"), so
//     a lagging follower cannot make a retry look new or hide the event
//     just written; a follower answers with the leader's address, and
//     the client moves there.
//   - Large appends. The server refuses an event over its
//     MaxAppendEventSize (16 MiB by default) and a request whose events
//     add up to more than its MaxAppendSize (256 MiB by default). Append
//     refuses the first itself (domain.ETOOLARGE) and splits the second
//     into several requests: the first at the caller's expectation, each
//     next one at the exact revision the previous one returned. A split
//     append is NOT atomic: if it fails part-way, the first requests stay
//     written, and a concurrent writer may slip in between them (the
//     later request then fails as a conflict). Retrying a failed split
//     append with the same events and expectation is safe: the tail check
//     finds the requests already written (the split is deterministic) and
//     appends the rest at the exact revision after them. Options must
//     match the server's settings for this to hold.
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
//     checkpoint, so one call never delivers an event twice. Failures no
//     retry can cure end them with an error matching domain.ErrPermanent:
//     a $all position the server does not know (a checkpoint taken on
//     another store), a deleted stream, refused credentials or rights, a
//     server without the needed API.
//
// The user in the connection string needs read access to $all (Dial, Check
// and SubscribeAll read it; KurrentDB grants it to admins only by default)
// and read and write access to the room streams. Stream reads need
// KurrentDB 22.6 or later, which reports $all positions on stream reads.
type Store struct {
	cfg                *esdb.Configuration
	logger             *slog.Logger
	maxAppendSize      int
	maxAppendEventSize int
	minDelay           time.Duration
	maxDelay           time.Duration

	ctx    context.Context // ends when Close starts; bounds reconnect pings
	cancel context.CancelFunc
	wg     sync.WaitGroup // every worker and the reconnect loop

	mu        sync.Mutex
	cur       *client              // nil while reconnecting
	clients   map[*client]struct{} // every client not yet closed
	closed    bool
	downCause error     // why cur is nil
	downAt    time.Time // since when
	attempts  int       // reconnect attempts since downAt

	// The client's subscribe calls, replaced by fakes in tests.
	subscribeToAll    func(ctx context.Context, opts esdb.SubscribeToAllOptions) (subscription, error)
	subscribeToStream func(ctx context.Context, stream string, opts esdb.SubscribeToStreamOptions) (subscription, error)
}

// newStore returns a store over cfg, connecting lazily; a nil cfg gives a
// store without a client, for tests that replace its subscribe calls.
func newStore(cfg *esdb.Configuration, opts Options) (*Store, error) {
	s := &Store{
		cfg:                cfg,
		logger:             opts.Logger,
		maxAppendSize:      opts.MaxAppendSize,
		maxAppendEventSize: opts.MaxAppendEventSize,
		minDelay:           opts.MinRetryDelay,
		maxDelay:           opts.MaxRetryDelay,
		clients:            map[*client]struct{}{},
		downCause:          errors.New("no server configured"),
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.maxAppendSize <= 0 {
		s.maxAppendSize = DefaultMaxAppendSize
	}
	if s.maxAppendEventSize <= 0 {
		s.maxAppendEventSize = DefaultMaxAppendEventSize
	}
	if s.minDelay <= 0 {
		s.minDelay = DefaultMinRetryDelay
	}
	if s.maxDelay <= 0 {
		s.maxDelay = DefaultMaxRetryDelay
	}
	s.maxDelay = max(s.maxDelay, s.minDelay)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if cfg != nil {
		c, err := s.newClient()
		if err != nil {
			return nil, err
		}
		s.cur = c
	}
	s.subscribeToAll = func(ctx context.Context, opts esdb.SubscribeToAllOptions) (subscription, error) {
		return s.openSubscription(ctx, func(ctx context.Context, ec *esdb.Client) (*esdb.Subscription, error) {
			return ec.SubscribeToAll(ctx, opts)
		})
	}
	s.subscribeToStream = func(ctx context.Context, stream string, opts esdb.SubscribeToStreamOptions) (subscription, error) {
		return s.openSubscription(ctx, func(ctx context.Context, ec *esdb.Client) (*esdb.Subscription, error) {
			return ec.SubscribeToStream(ctx, stream, opts)
		})
	}
	return s, nil
}

// Dial parses a KurrentDB connection string (esdb://host:2113?tls=false,
// say; see esdb.ParseConnectionString), creates a client that logs to
// opts.Logger, and checks that the server answers by reading the last
// event of $all. A connection string without maxDiscoverAttempts gets
// DefaultMaxDiscoverAttempts. It may hold a password; that never appears
// in errors or logs. Close the store when done.
func Dial(ctx context.Context, connString string, opts Options) (*Store, error) {
	cfg, err := esdb.ParseConnectionString(connString)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // url.Error repeats the whole string, password included
		}
		return nil, fmt.Errorf("kurrentdb: parse connection string: %w", err)
	}
	if q := strings.ToLower(connString); !strings.Contains(q[strings.IndexByte(q, '?')+1:], "maxdiscoverattempts=") {
		cfg.MaxDiscoverAttempts = DefaultMaxDiscoverAttempts
	}
	s, err := newStore(cfg, opts)
	if err != nil {
		return nil, err
	}
	if err := s.Check(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// Check reports whether the store can serve now: nil when the server
// answers a read of the end of $all, an error coded domain.EUNAVAILABLE
// while the store reconnects (saying since when and why), or the read's
// error. /readyz calls it.
func (s *Store) Check(ctx context.Context) error {
	if err := s.call(ctx, pingOn); err != nil {
		return mapError(ctx, err, "read the end of $all")
	}
	return nil
}

// pingOn reads the last event of $all.
func pingOn(ctx context.Context, ec *esdb.Client) error {
	rs, err := ec.ReadAll(ctx, esdb.ReadAllOptions{Direction: esdb.Backwards, From: esdb.End{}}, 1)
	if err != nil {
		return err
	}
	defer rs.Close()
	if _, err := rs.Recv(); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// SubscriptionBatch is the most events a subscription hands its handler at
// once: a batch of that size means the subscriber is behind the log.
func (s *Store) SubscriptionBatch() int { return maxBatch }

// Close closes every client and waits for the store's goroutines. Calls
// in flight and open subscriptions fail with domain.EUNAVAILABLE; later
// calls fail at once with an error matching domain.ErrPermanent, which
// ends subscriptions. It never panics and may be called more than once.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.cancel() // ends the calls in flight and the reconnect loop
	for c := range s.clients {
		c.retired = true
		s.maybeCloseLocked(c)
	}
	s.cur = nil
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }() // owned: waited for below
	select {
	case <-done:
		return nil
	case <-time.After(closeGrace):
	}
	s.mu.Lock()
	for c := range s.clients { // calls are stuck in them: closing releases them
		s.closeLocked(c)
	}
	s.mu.Unlock()
	<-done
	return nil
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
