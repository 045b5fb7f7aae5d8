package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/domain"
)

var _ domain.EventStore = (*Store)(nil)

// DefaultReadInterval is StoreConfig.ReadInterval's default.
const DefaultReadInterval = 5 * time.Millisecond

// StoreConfig configures a Store. The zero value is usable: every field
// has a documented default.
type StoreConfig struct {
	// AsyncPool, when set, carries the appends made only of events whose
	// types are in AsyncTypes. Give it connections with
	// synchronous_commit=off (pgx RuntimeParams) to the same database:
	// such an append is visible to readers as soon as it commits, but
	// returns before its WAL reaches disk, so a crash of PostgreSQL (not
	// of the writer) may lose the last few hundred milliseconds of them
	// (3 × wal_writer_delay at most). Ordering is kept: a later
	// synchronous commit flushes every earlier one. Parley uses it for
	// answer chunks, whose answer a synchronous AnswerCompleted seals;
	// chunks lost to a database crash leave their answer open, and
	// recovery fails it as interrupted.
	AsyncPool  *pgxpool.Pool
	AsyncTypes []string

	// Logger receives warnings about the listener; nil discards them.
	Logger *slog.Logger
	// PollInterval is how often an idle subscription looks for new events
	// when no notification wakes it (a dropped listener, a notification
	// lost, or an event held back behind a slower transaction). Default 250ms.
	PollInterval time.Duration
	// Channel is the LISTEN/NOTIFY channel. Default "parley_events".
	Channel string
	// SubscriptionBatch is the most events a subscription hands its handler
	// at once. Default domain.DefaultReadLimit.
	SubscriptionBatch int
	// NotifyInterval is the least time between two NOTIFYs this store sends
	// for its appends; appends in between share the next one. It bounds the
	// extra delay before another process's subscriptions wake (subscriptions
	// in this process wake at once). Default 2ms.
	NotifyInterval time.Duration

	// ReadInterval is the least time between the starts of two reads of a
	// subscription that is following live: appends that land in between
	// are read together. It bounds the delay it adds to delivery. Default
	// DefaultReadInterval.
	ReadInterval time.Duration

	// ProofInterval is how long a live subscription lets the oldest
	// running transaction of the server hold back committed events before
	// it works out which transactions may still write events (the exact
	// bound, visibleBoundSQL, which reads pg_locks: about a millisecond on
	// a server with many connections). Reads use the cheap bound — every
	// transaction below the oldest one running has ended — which an
	// append in flight holds back only until it ends; a long transaction
	// elsewhere (another database, another table) holds it back for
	// longer, and then at most one exact bound is worked out per
	// ProofInterval. It bounds the delay such a transaction adds. Default
	// 20ms.
	ProofInterval time.Duration

	// AppendBatch is the most appends one statement carries. Appends that
	// arrive while AppendWorkers statements are in flight wait and go
	// together in the next one: one commit for many streams, so the
	// store's throughput grows with load instead of its latency. An append
	// that finds a worker idle runs at once, alone. Default 64; 1 turns
	// batching off (every append its own statement, as before).
	AppendBatch int
	// AppendWorkers is how many batch statements run at once, per pool.
	// More workers means more concurrent statements, each carrying fewer
	// appends; with two, one commits while the next fills. Default 2.
	AppendWorkers int
	// AppendWindow is how long a worker holds an append for others to join
	// its statement while the store is busy (other appends are in flight
	// at the same time): at a few thousand appends a second it turns a
	// statement and commit per one or two appends into one per several,
	// for up to AppendWindow of latency each. An append with no other in
	// flight (a single writer appending one after another, say) runs at
	// once. Default 2ms; negative turns it off.
	AppendWindow time.Duration
}

func (c *StoreConfig) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 250 * time.Millisecond
	}
	if c.Channel == "" {
		c.Channel = "parley_events"
	}
	if c.SubscriptionBatch <= 0 {
		c.SubscriptionBatch = domain.DefaultReadLimit
	}
	if c.NotifyInterval <= 0 {
		c.NotifyInterval = 2 * time.Millisecond
	}
	if c.ReadInterval <= 0 {
		c.ReadInterval = DefaultReadInterval
	}
	if c.ProofInterval <= 0 {
		c.ProofInterval = 20 * time.Millisecond
	}
	if c.AppendBatch <= 0 {
		c.AppendBatch = 64
	}
	if c.AppendWorkers <= 0 {
		c.AppendWorkers = 2
	}
	if c.AppendWindow == 0 {
		c.AppendWindow = 2 * time.Millisecond
	}
}

// Store is the Postgres event store. Create it with NewStore and stop it
// with Close; it does not own the pool.
type Store struct {
	pool *pgxpool.Pool
	cfg  StoreConfig
	log  *slog.Logger

	// reads is the pool of the global log's reads (readAllSQL, boundSQL,
	// HeadPosition): the pool's connections, a few of them, with
	// plan_cache_mode=force_generic_plan. Those statements are cheap to run
	// and dear to plan, and PostgreSQL would otherwise plan them afresh on
	// every call (their generic plan's estimate is the higher). After
	// Close, reads use pool.
	reads       *pgxpool.Pool
	readsClosed atomic.Bool

	mu      sync.Mutex
	changed chan struct{} // closed and replaced when events may have arrived

	notifyReq chan struct{} // a pending NOTIFY for other processes, coalesced

	// complete is a transaction id below which this store has already
	// returned the log as complete (see visibleBoundSQL): reads never
	// stop below it, so a ReadAll after HeadPosition reaches that head.
	complete atomic.Int64

	// epoch counts the server restarts this store has seen (see
	// checkServer); serverStart is the server's start time at the last
	// look. A subscription that began in an earlier epoch ends with
	// domain.ErrStoreRestarted.
	epoch       atomic.Int64
	serverMu    sync.Mutex
	serverStart time.Time

	batch      *batcher // appends on pool; nil when AppendBatch is 1
	asyncBatch *batcher // appends on AsyncPool; nil without one or when AppendBatch is 1
	stats      appendCounters

	// done is the Done channel of the context the store's goroutines run
	// under; Close cancels it with stop, and appends stop queueing.
	done <-chan struct{}
	stop context.CancelFunc
	wg   sync.WaitGroup
}

// asyncOnly reports whether every event is of a type committed
// asynchronously (StoreConfig.AsyncTypes).
func (s *Store) asyncOnly(events []domain.EventData) bool {
	for _, ev := range events {
		if !slices.Contains(s.cfg.AsyncTypes, ev.Type) {
			return false
		}
	}
	return true
}

// NewStore returns a store over a migrated database (see Migrate). It
// starts the LISTEN wake-up listener, the coalescing notifier and the
// append workers (AppendWorkers per pool), which Close stops and waits for.
func NewStore(pool *pgxpool.Pool, cfg StoreConfig) *Store {
	cfg.setDefaults()
	ctx, stop := context.WithCancel(context.Background())
	s := &Store{
		pool:      pool,
		cfg:       cfg,
		log:       cfg.Logger.With("component", "postgres_event_store"),
		changed:   make(chan struct{}),
		notifyReq: make(chan struct{}, 1),
		done:      ctx.Done(),
		stop:      stop,
	}
	rcfg := pool.Config().Copy()
	rcfg.MaxConns, rcfg.MinConns = 4, 0
	rcfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_generic_plan"
	if reads, err := pgxpool.NewWithConfig(context.Background(), rcfg); err == nil { // connects on first use
		s.reads = reads
	} else {
		s.reads = pool
		s.readsClosed.Store(true)
	}
	if cfg.AppendBatch > 1 {
		s.batch = s.newBatcher(ctx, pool)
		if cfg.AsyncPool != nil {
			s.asyncBatch = s.newBatcher(ctx, cfg.AsyncPool)
		}
	}
	s.wg.Go(func() { s.listen(ctx) })
	s.wg.Go(func() { s.notify(ctx) })
	return s
}

// Close stops the listener, the notifier and the append workers (each
// finishes the statement it is running) and waits for them. Appends after
// Close run one statement each; subscriptions keep working by polling
// until their contexts end. Close may be called more than once.
func (s *Store) Close() error {
	s.stop()
	s.wg.Wait()
	if s.readsClosed.CompareAndSwap(false, true) {
		s.reads.Close()
	}
	return nil
}

// readPool is the pool the global log's reads use (Store.reads).
func (s *Store) readPool() *pgxpool.Pool {
	if s.readsClosed.Load() {
		return s.pool
	}
	return s.reads
}

// SubscriptionBatch is the most events a subscription hands its handler at
// once (StoreConfig.SubscriptionBatch after defaults): a batch of that
// size means the subscriber is behind the log.
func (s *Store) SubscriptionBatch() int { return s.cfg.SubscriptionBatch }

// wakeup returns a channel closed the next time events may have arrived.
func (s *Store) wakeup() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

func (s *Store) broadcast() {
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

func encodeExpected(e domain.ExpectedVersion) int64 {
	switch {
	case e.IsAny():
		return -1
	case e.IsNoStream():
		return -2
	case e.IsStreamExists():
		return -3
	}
	v, _ := e.Version()
	return v
}

// appendSQL is the whole append: one statement, one round trip, one
// commit. $2 encodes the expectation (see encodeExpected). It returns the
// stream's version before the append and, when it wrote, the last event's
// version and position.
const appendSQL = `WITH cur AS (
	SELECT coalesce(max(version), -1) AS v FROM events WHERE stream = $1
), ins AS (
	INSERT INTO events (txid, stream, version, id, type, data, metadata)
	SELECT pg_current_xact_id()::text::bigint, $1, cur.v + u.ord, u.id, u.typ, u.dat::json, u.met::json
	  FROM cur, unnest($3::uuid[], $4::text[], $5::text[], $6::text[]) WITH ORDINALITY AS u(id, typ, dat, met, ord)
	 WHERE $2 = -1 OR ($2 = -2 AND cur.v = -1) OR ($2 = -3 AND cur.v >= 0) OR $2 = cur.v
	RETURNING version, txid, seq
)
SELECT cur.v, (SELECT max(version) FROM ins), (SELECT max(txid) FROM ins), (SELECT max(seq) FROM ins) FROM cur`

// maxRaceRetries bounds how often an Any or StreamExists append retries
// after losing a race for the next version to another writer.
const maxRaceRetries = 100

// encodedEvents is an append's events as the statement's array parameters.
type encodedEvents struct {
	ids   [][16]byte
	types []string
	data  []string
	meta  []*string
}

func encodeEvents(events []domain.EventData) encodedEvents {
	e := encodedEvents{
		ids:   make([][16]byte, len(events)),
		types: make([]string, len(events)),
		data:  make([]string, len(events)),
		meta:  make([]*string, len(events)),
	}
	for i, ev := range events {
		e.ids[i] = ev.ID
		e.types[i] = ev.Type
		e.data[i] = string(ev.Data)
		if len(ev.Metadata) > 0 {
			m := string(ev.Metadata)
			e.meta[i] = &m
		}
	}
	return e
}

// Append implements domain.Appender. While other appends are in flight it
// joins them in one statement and one commit (see batch.go); alone, or
// with StoreConfig.AppendBatch 1, it runs appendSQL by itself.
func (s *Store) Append(ctx context.Context, stream string, expected domain.ExpectedVersion, events ...domain.EventData) (_ domain.AppendResult, err error) {
	defer markOutage(&err)
	if err := domain.ValidateAppend(stream, events); err != nil {
		return domain.AppendResult{}, err
	}
	s.stats.appends.Add(1)
	enc := encodeEvents(events)
	pool, b := s.pool, s.batch
	if s.cfg.AsyncPool != nil && s.asyncOnly(events) {
		pool, b = s.cfg.AsyncPool, s.asyncBatch
	}
	if b == nil {
		return s.appendOne(ctx, pool, stream, expected, enc)
	}
	return b.append(ctx, stream, expected, enc)
}

// appendOne is one append in its own statement (see appendSQL).
// Idempotent retries are recognised only when the append fails (a version
// conflict or an event ID already stored), so the common path pays nothing
// for them.
func (s *Store) appendOne(ctx context.Context, pool *pgxpool.Pool, stream string, expected domain.ExpectedVersion, enc encodedEvents) (domain.AppendResult, error) {
	for attempt := 0; ; attempt++ {
		s.stats.statements.Add(1)
		var (
			actual           int64
			last, commit, pr *int64
		)
		err := pool.QueryRow(ctx, appendSQL, stream, encodeExpected(expected), enc.ids, enc.types, enc.data, enc.meta).
			Scan(&actual, &last, &commit, &pr)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" {
			// An ID already stored, or another writer took the version.
			res, found, rerr := s.retried(ctx, stream, expected, enc.ids)
			if found || rerr != nil {
				return res, rerr
			}
			if pgErr.ConstraintName == "events_pkey" && (expected.IsAny() || expected.IsStreamExists()) && attempt < maxRaceRetries {
				continue
			}
			return domain.AppendResult{}, s.conflict(ctx, stream, expected)
		}
		if err != nil {
			return domain.AppendResult{}, fmt.Errorf("postgres: append %d events to %s: %w", len(enc.ids), stream, err)
		}
		if last == nil { // the expectation did not hold
			return s.failedExpectation(ctx, stream, expected, enc.ids, actual)
		}
		s.appended()
		return domain.AppendResult{Version: *last, Position: domain.Position{Commit: uint64(*commit), Prepare: uint64(*pr)}}, nil
	}
}

// failedExpectation answers an append whose expectation did not hold when
// the stream was at version actual: an idempotent retry gets the original
// result, anything else a *ConflictError.
func (s *Store) failedExpectation(ctx context.Context, stream string, expected domain.ExpectedVersion, ids [][16]byte, actual int64) (domain.AppendResult, error) {
	res, found, err := s.retried(ctx, stream, expected, ids)
	if found || err != nil {
		return res, err
	}
	return domain.AppendResult{}, &domain.ConflictError{Stream: stream, Expected: expected, Actual: actual}
}

// appended wakes this process's subscriptions and asks the notifier to
// wake other processes'.
func (s *Store) appended() {
	s.broadcast()
	select {
	case s.notifyReq <- struct{}{}:
	default: // a notification is already pending; it covers this append
	}
}

// conflict builds the conflict error for a lost race, with the stream's
// version as it is now.
func (s *Store) conflict(ctx context.Context, stream string, expected domain.ExpectedVersion) error {
	ce := &domain.ConflictError{Stream: stream, Expected: expected}
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(max(version), -1) FROM events WHERE stream = $1`, stream).Scan(&ce.Actual); err != nil {
		return fmt.Errorf("postgres: append to %s: read its version after a conflict: %w", stream, err)
	}
	return ce
}

// retried decides, after an append failed, whether it was an idempotent
// retry: every ID stored in this stream, in order, at the versions the
// expectation put them. Then it returns the original result. found is
// false when none of the IDs is stored (a plain conflict, for the caller);
// when some are, but not as a retry, the error is the conflict.
func (s *Store) retried(ctx context.Context, stream string, expected domain.ExpectedVersion, ids [][16]byte) (domain.AppendResult, bool, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, stream, version, txid, seq,
			(SELECT coalesce(max(version), -1) FROM events WHERE stream = $2)
		FROM events WHERE id = ANY ($1)`, ids, stream)
	if err != nil {
		return domain.AppendResult{}, false, fmt.Errorf("postgres: append to %s: check for a retry: %w", stream, err)
	}
	type stored struct {
		stream    string
		version   int64
		txid, seq int64
	}
	var actual int64
	found := make(map[[16]byte]stored, len(ids))
	for rows.Next() {
		var (
			id [16]byte
			st stored
		)
		if err := rows.Scan(&id, &st.stream, &st.version, &st.txid, &st.seq, &actual); err != nil {
			rows.Close()
			return domain.AppendResult{}, false, fmt.Errorf("postgres: append to %s: check for a retry: %w", stream, err)
		}
		found[id] = st
	}
	if err := rows.Err(); err != nil {
		return domain.AppendResult{}, false, fmt.Errorf("postgres: append to %s: check for a retry: %w", stream, err)
	}
	if len(found) == 0 {
		return domain.AppendResult{}, false, nil
	}
	conflict := &domain.ConflictError{Stream: stream, Expected: expected, Actual: actual}
	first, ok := found[ids[0]]
	for i, id := range ids {
		st, have := found[id]
		switch {
		case !have:
			ok = false
			conflict.Reason = "some of the event IDs are already stored and some are not"
		case st.stream != stream:
			conflict.Reason = fmt.Sprintf("event ID %s is already used in stream %s", domain.UUID(id), st.stream)
			return domain.AppendResult{}, true, conflict
		case ok && st.version != first.version+int64(i):
			ok = false
			conflict.Reason = "the event IDs are already stored in another order"
		}
	}
	if ok && !expected.Holds(first.version-1) {
		ok = false
		conflict.Reason = "the event IDs are already stored at other versions"
	}
	if !ok {
		return domain.AppendResult{}, true, conflict
	}
	last := found[ids[len(ids)-1]]
	return domain.AppendResult{Version: last.version, Position: domain.Position{Commit: uint64(last.txid), Prepare: uint64(last.seq)}}, true, nil
}

const eventColumns = `id, type, data, metadata, stream, version, txid, seq, recorded_at`

func scanEvents(rows pgx.Rows, capacity int) ([]domain.RecordedEvent, error) {
	defer rows.Close()
	out := make([]domain.RecordedEvent, 0, capacity)
	for rows.Next() {
		var (
			ev         domain.RecordedEvent
			id         [16]byte
			data, meta []byte
			txid, seq  int64
		)
		if err := rows.Scan(&id, &ev.Type, &data, &meta, &ev.Stream, &ev.Version, &txid, &seq, &ev.RecordedAt); err != nil {
			return nil, err
		}
		ev.ID = id
		ev.Data = json.RawMessage(data)
		ev.Metadata = json.RawMessage(meta)
		ev.Position = domain.Position{Commit: uint64(txid), Prepare: uint64(seq)}
		ev.RecordedAt = ev.RecordedAt.UTC()
		out = append(out, ev)
	}
	return out, rows.Err()
}

// readStreamSQL reads a page of one stream along its primary key: indexed
// by direction, then by whether the read keeps only some types ($4), which
// the scan checks on the rows it passes (a stream's events of all types
// lie together in the index; the page ends at Limit rows kept).
var readStreamSQL = [2][2]string{
	{`SELECT ` + eventColumns + ` FROM events WHERE stream = $1 AND version >= $2 ORDER BY version LIMIT $3`,
		`SELECT ` + eventColumns + ` FROM events WHERE stream = $1 AND version >= $2 AND type = ANY($4) ORDER BY version LIMIT $3`},
	{`SELECT ` + eventColumns + ` FROM events WHERE stream = $1 AND version <= $2 ORDER BY version DESC LIMIT $3`,
		`SELECT ` + eventColumns + ` FROM events WHERE stream = $1 AND version <= $2 AND type = ANY($4) ORDER BY version DESC LIMIT $3`},
}

// ReadStream implements domain.StreamReader.
func (s *Store) ReadStream(ctx context.Context, stream string, opts domain.ReadStreamOptions) (_ []domain.RecordedEvent, err error) {
	defer markOutage(&err)
	if err := domain.ValidateStreamName(stream); err != nil {
		return nil, err
	}
	limit := domain.ReadLimit(opts.Limit)
	dir, filtered := 0, 0
	if opts.Direction == domain.Backward {
		dir = 1
	}
	args := []any{stream, opts.From, limit}
	if len(opts.Types) > 0 {
		filtered, args = 1, append(args, opts.Types)
	}
	rows, err := s.pool.Query(ctx, readStreamSQL[dir][filtered], args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: read %s %s from %d: %w", stream, opts.Direction, opts.From, err)
	}
	evs, err := scanEvents(rows, min(limit, 64))
	if err != nil {
		return nil, fmt.Errorf("postgres: read %s %s from %d: %w", stream, opts.Direction, opts.From, err)
	}
	if len(evs) == 0 {
		var exists bool
		if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM events WHERE stream = $1)`, stream).Scan(&exists); err != nil {
			return nil, fmt.Errorf("postgres: read %s: %w", stream, err)
		}
		if !exists {
			return nil, &domain.StreamNotFoundError{Stream: stream}
		}
	}
	return evs, nil
}

// visibleBoundSQL is the transaction id below which the global log is
// complete: no transaction below it can still commit events.
//
// It is the oldest transaction of the statement's snapshot that is not
// proven harmless, else the snapshot's xmax (every transaction below it
// has ended and is visible). A transaction of the snapshot is harmless
// when, in one reading of pg_locks, it holds its transaction id lock but
// no lock on this database's events table, and a status check made after
// that reading finds it still running. So transactions writing other
// tables, or in other databases of the server, hold nothing back, where
// pg_snapshot_xmin alone would wait for every write transaction on the
// whole server.
//
// Why that is safe: the store appends in single statements, which lock
// the events table before they take a transaction id and keep the lock
// until they end. A writer in the snapshot therefore held the lock before
// the snapshot was taken. If it is still running when pg_locks is read,
// the lock is there; if it has ended, its transaction id lock is gone (or
// was read just before it went, and the later status check sees it
// ended). Either way it is not harmless. Anything unproven — a
// transaction whose id lock is not in the table yet, say — counts as a
// writer. pg_locks is read once (a MATERIALIZED CTE) and before any status
// check (CASE fixes the order). A transaction that wrote elsewhere first
// and appended events later could commit events below the bound: nothing
// writes events that way (appendSQL and batchSQL are single statements).
//
// The bound is cautious, so it can fall back: a transaction of the snapshot
// that ends while the bound is worked out, or one proven harmless that
// later reads the events table, holds one read back below a bound an
// earlier read proved. But a proof stays true: what was below a bound once
// is complete for good. So reads take the greater of the bound and the
// store's complete mark (Store.complete), the transaction after the last
// event it has returned.
const visibleBoundSQL = `(WITH l AS MATERIALIZED (SELECT locktype, database, relation, transactionid, virtualtransaction, mode, granted FROM pg_locks),
	harmless AS MATERIALIZED (
	  SELECT t.transactionid::text::bigint AS xid32 FROM l t
	   WHERE t.locktype = 'transactionid' AND t.mode = 'ExclusiveLock' AND t.granted
	     AND NOT EXISTS (SELECT 1 FROM l r
	                      WHERE r.virtualtransaction = t.virtualtransaction AND r.locktype = 'relation'
	                        AND r.relation = 'events'::regclass
	                        AND r.database = (SELECT oid FROM pg_database WHERE datname = current_database())))
	SELECT least(pg_snapshot_xmax(snap.s)::text::bigint,
	  (SELECT min(x::text::bigint) FROM pg_snapshot_xip(snap.s) AS x
	    WHERE CASE WHEN (x::text::bigint % 4294967296) IN (SELECT xid32 FROM harmless)
	               THEN pg_xact_status(x) <> 'in progress'
	               ELSE true END))
	FROM (SELECT pg_current_snapshot() AS s) AS snap)`

// readAllSQL pages the global log below a bound every transaction under
// which has ended: the oldest transaction the statement's snapshot sees
// running (pg_snapshot_xmin; the snapshot's xmax when none runs), or the
// store's complete mark ($5, see visibleBoundSQL) when that is higher. Rows
// at or above it are not returned yet: a transaction below them might
// still commit rows that sort before them. It is cheap, but cautious: any
// transaction on the server holds it back, not only those that may write
// events. So each row also says where the bound stood and whether
// committed rows of the page's streams wait at or above it ("held"); a
// reader that finds them held for long works out the exact bound
// (visibleBoundSQL) and raises the complete mark (see Store.prove). The
// result has one row even when the page is empty, with NULL event columns.
// The "held" probe walks the (txid, seq) index from whichever is later,
// the position read after or the bound (rows after the position at or
// above the bound), to its first row (ORDER BY ... LIMIT 1): written as an
// EXISTS from the position, its generic plan scanned the whole table when
// no row waits, and a catch-up from far back scanned all it had still to
// read on every page.
const readAllSQL = `WITH b AS MATERIALIZED (
	SELECT x.bound, coalesce((SELECT true FROM events e
	                           WHERE (e.txid, e.seq) > (greatest($1, x.bound - 1), CASE WHEN $1 >= x.bound THEN $2 ELSE 9223372036854775807 END)
	                             AND ($3 = '' OR starts_with(e.stream, $3))
	                           ORDER BY e.txid, e.seq LIMIT 1), false) AS held
	  FROM (SELECT greatest($5::bigint, pg_snapshot_xmin(pg_current_snapshot())::text::bigint) AS bound) AS x
), page AS MATERIALIZED (
	SELECT ` + eventColumns + ` FROM events
	 WHERE (txid, seq) > ($1, $2) AND txid < (SELECT bound FROM b) AND ($3 = '' OR starts_with(stream, $3))
	 ORDER BY txid, seq
	 LIMIT $4
)
SELECT p.id, p.type, p.data, p.metadata, p.stream, p.version, p.txid, p.seq, p.recorded_at, b.bound, b.held
  FROM b LEFT JOIN page p ON true
 ORDER BY p.txid, p.seq`

// boundSQL works out the exact bound (see visibleBoundSQL), or the
// complete mark ($1) when that is higher.
const boundSQL = `SELECT greatest($1::bigint, ` + visibleBoundSQL + `)`

// proveAttempts bounds how many times ReadAll and HeadPosition work out
// the exact bound while committed events still wait behind it. One proof
// can fall short when a transaction of its snapshot ends while it reads
// pg_locks (it counts as a writer, see visibleBoundSQL); on a busy server
// that happens often enough to matter, and the next proof's snapshot no
// longer holds that transaction, so its bound is higher. A proof that
// finds the same bound as the one before has met a writer still running
// (an append in flight): they stop there.
const proveAttempts = 4

// ReadAll implements domain.AllReader. When committed events wait behind
// a transaction that holds the cheap bound back, it works out the exact
// bound and reads again (up to proveAttempts times), so it returns every
// event that is safe to.
func (s *Store) ReadAll(ctx context.Context, opts domain.ReadAllOptions) (_ []domain.RecordedEvent, err error) {
	defer markOutage(&err)
	limit := domain.ReadLimit(opts.Limit)
	page, err := s.readAll(ctx, opts.After, opts.StreamPrefix, limit)
	for i, last := 0, int64(-1); i < proveAttempts && err == nil && page.held && len(page.events) < limit; i++ {
		bound, perr := s.prove(ctx)
		if perr != nil {
			return nil, fmt.Errorf("postgres: read all after %s: %w", opts.After, perr)
		}
		if bound == last {
			break // the same writer still holds it
		}
		last = bound
		page, err = s.readAll(ctx, opts.After, opts.StreamPrefix, limit)
	}
	return page.events, err
}

// headSQL reads the last event below the exact bound (or the complete
// mark, $1), and whether committed events wait at or above that bound.
const headSQL = `WITH b AS MATERIALIZED (SELECT greatest($1::bigint, ` + visibleBoundSQL + `) AS bound)
SELECT h.txid, h.seq, b.bound, EXISTS (SELECT 1 FROM events e WHERE e.txid >= b.bound) AS held
  FROM b LEFT JOIN LATERAL (SELECT txid, seq FROM events WHERE txid < b.bound
                             ORDER BY txid DESC, seq DESC LIMIT 1) h ON true`

// HeadPosition implements domain.AllReader, with the exact bound. Like
// ReadAll it works the bound out again (up to proveAttempts times) while
// committed events wait behind it.
func (s *Store) HeadPosition(ctx context.Context) (_ domain.Position, err error) {
	defer markOutage(&err)
	var (
		txid, seq *int64
		held      = true
	)
	for i, bound, last := 0, int64(-1), int64(-2); held && bound != last && i < proveAttempts; i++ {
		last = bound
		if err := s.readPool().QueryRow(ctx, headSQL, s.complete.Load()).Scan(&txid, &seq, &bound, &held); err != nil {
			return domain.Position{}, fmt.Errorf("postgres: read head position: %w", err)
		}
	}
	if txid == nil {
		return domain.Start, nil
	}
	s.completeBelow(*txid + 1)
	return domain.Position{Commit: uint64(*txid), Prepare: uint64(*seq)}, nil
}

// logPage is a read of the global log: its events, the bound it stopped
// at, and whether committed events of its streams wait at or above it.
type logPage struct {
	events []domain.RecordedEvent
	bound  int64
	held   bool
}

func (s *Store) readAll(ctx context.Context, after domain.Position, prefix string, limit int) (logPage, error) {
	rows, err := s.readPool().Query(ctx, readAllSQL, int64(after.Commit), int64(after.Prepare), prefix, limit, s.complete.Load())
	if err != nil {
		return logPage{}, fmt.Errorf("postgres: read all after %s: %w", after, err)
	}
	defer rows.Close()
	p := logPage{events: make([]domain.RecordedEvent, 0, min(limit, 64))}
	for rows.Next() {
		var (
			ev         domain.RecordedEvent
			id         *[16]byte
			typ, str   *string
			data, meta []byte
			version    *int64
			txid, seq  *int64
			at         *time.Time
		)
		if err := rows.Scan(&id, &typ, &data, &meta, &str, &version, &txid, &seq, &at, &p.bound, &p.held); err != nil {
			return logPage{}, fmt.Errorf("postgres: read all after %s: %w", after, err)
		}
		if id == nil {
			continue // the row of an empty page
		}
		ev.ID, ev.Type, ev.Stream, ev.Version = *id, *typ, *str, *version
		ev.Data, ev.Metadata = json.RawMessage(data), json.RawMessage(meta)
		ev.Position = domain.Position{Commit: uint64(*txid), Prepare: uint64(*seq)}
		ev.RecordedAt = at.UTC()
		p.events = append(p.events, ev)
	}
	if err := rows.Err(); err != nil {
		return logPage{}, fmt.Errorf("postgres: read all after %s: %w", after, err)
	}
	if n := len(p.events); n > 0 {
		s.completeBelow(int64(p.events[n-1].Position.Commit) + 1)
	}
	return p, nil
}

// prove works out the exact bound (visibleBoundSQL), raises the complete
// mark to it and returns it.
func (s *Store) prove(ctx context.Context) (int64, error) {
	var bound int64
	if err := s.readPool().QueryRow(ctx, boundSQL, s.complete.Load()).Scan(&bound); err != nil {
		return 0, fmt.Errorf("work out which transactions may still write events: %w", err)
	}
	s.completeBelow(bound)
	return bound, nil
}

// completeBelow raises the complete mark to txid: a read has returned an
// event of the transaction before it, so it was below a proven bound.
func (s *Store) completeBelow(txid int64) {
	for {
		cur := s.complete.Load()
		if txid <= cur || s.complete.CompareAndSwap(cur, txid) {
			return
		}
	}
}

// SubscribeAll implements domain.Subscriber. Its reads use the cheap
// bound (readAllSQL); when committed events have waited behind the same
// bound for ProofInterval, it works out the exact one (Store.prove).
func (s *Store) SubscribeAll(ctx context.Context, opts domain.SubscribeAllOptions, h domain.Handler) error {
	after := opts.After
	var (
		bound     int64     // the cheap bound of the last read
		heldSince time.Time // since when events have waited behind it
	)
	return s.follow(ctx, "all", func(ctx context.Context) (int, time.Duration, error) {
		page, err := s.readAll(ctx, after, opts.StreamPrefix, s.cfg.SubscriptionBatch)
		if err != nil {
			return 0, 0, err
		}
		prove := time.Duration(0)
		switch {
		case !page.held:
			heldSince = time.Time{}
		case heldSince.IsZero() || page.bound != bound:
			heldSince = time.Now() // held anew, or by a newer transaction
			prove = s.cfg.ProofInterval
		case time.Since(heldSince) >= s.cfg.ProofInterval:
			if _, err := s.prove(ctx); err != nil {
				return 0, 0, err
			}
			heldSince = time.Time{}
			if len(page.events) == 0 {
				return 0, -1, nil // read again at once, below the new bound
			}
		default:
			prove = s.cfg.ProofInterval - time.Since(heldSince)
		}
		bound = page.bound
		if len(page.events) == 0 {
			return 0, prove, nil
		}
		if err := h(ctx, page.events); err != nil {
			return 0, 0, handlerError{err}
		}
		after = page.events[len(page.events)-1].Position
		return len(page.events), prove, nil
	})
}

// SubscribeStream implements domain.Subscriber. A stream's versions are
// written under its lock and become visible in order, so reading by
// version needs no snapshot bound.
func (s *Store) SubscribeStream(ctx context.Context, stream string, after int64, h domain.Handler) error {
	if err := domain.ValidateStreamName(stream); err != nil {
		return err
	}
	q := `SELECT ` + eventColumns + ` FROM events WHERE stream = $1 AND version > $2 ORDER BY version LIMIT $3`
	return s.follow(ctx, stream, func(ctx context.Context) (int, time.Duration, error) {
		rows, err := s.pool.Query(ctx, q, stream, after, s.cfg.SubscriptionBatch)
		if err != nil {
			return 0, 0, fmt.Errorf("postgres: read %s after %d: %w", stream, after, err)
		}
		batch, err := scanEvents(rows, 16)
		if err != nil || len(batch) == 0 {
			return 0, 0, err
		}
		if err := h(ctx, batch); err != nil {
			return 0, 0, handlerError{err}
		}
		after = batch[len(batch)-1].Version
		return len(batch), 0, nil
	})
}

// handlerError marks an error returned by a subscriber's handler, which
// ends the subscription, as opposed to a read error, which is retried.
type handlerError struct{ err error }

func (e handlerError) Error() string { return e.err.Error() }

// follow runs step until ctx ends or the handler fails: straight away
// again while it finds full batches (or asks for it with a negative
// retry), and otherwise after a wake-up, the poll interval or the retry
// step asked for (when positive), whichever comes first, but never sooner
// than ReadInterval after the previous read began, so that under a
// stream of small appends one read carries many of them. Read errors are
// logged and retried with backoff.
//
// When the server has restarted since the subscription began, follow
// returns domain.ErrStoreRestarted instead of reading on: with
// synchronous_commit off (StoreConfig.AsyncPool) a crash loses the last
// commits, and the transaction ids, versions and positions of what it
// lost are given to new events, which a reader past them would skip or
// take for what it already has. A restart is seen by the listener, whose
// connection it breaks, and by the subscription itself before it reads
// again after a failed read.
func (s *Store) follow(ctx context.Context, what string, step func(context.Context) (int, time.Duration, error)) error {
	backoff := s.cfg.PollInterval
	epoch := s.epoch.Load()
	if _, err := s.checkServer(ctx); err == nil {
		epoch = s.epoch.Load()
	}
	failed := false
	for {
		if failed {
			if _, err := s.checkServer(ctx); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if err := sleep(ctx, backoff); err != nil {
					return err
				}
				backoff = min(2*backoff, 5*time.Second)
				continue
			}
		}
		if s.epoch.Load() != epoch {
			s.log.Warn("the database restarted; ending the subscription so that it starts again from a position the database kept", "subscription", what)
			return domain.ErrStoreRestarted
		}
		wake := s.wakeup() // taken before reading, so no wake-up is missed
		began := time.Now()
		n, retry, err := step(ctx)
		failed = err != nil
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var he handlerError
		if errors.As(err, &he) {
			return he.err
		}
		if err != nil {
			s.log.Warn("subscription read failed; retrying", "subscription", what, "error", err, "retry_in", backoff)
			if err := sleep(ctx, backoff); err != nil {
				return err
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = s.cfg.PollInterval
		if n >= s.cfg.SubscriptionBatch || retry < 0 {
			continue // more may be waiting
		}
		poll := s.cfg.PollInterval
		if retry > 0 {
			poll = min(poll, retry)
		}
		timer := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-wake:
			timer.Stop()
			if rest := s.cfg.ReadInterval - time.Since(began); rest > 0 {
				if err := sleep(ctx, rest); err != nil {
					return err
				}
			}
		case <-timer.C:
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// listen holds a dedicated LISTEN connection and wakes subscriptions on
// every notification. When the connection drops it reconnects with
// backoff; subscriptions poll meanwhile, so nothing is lost.
func (s *Store) listen(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := s.listenOnce(ctx, func() { backoff = 100 * time.Millisecond })
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("event notification listener lost; subscriptions poll until it is back", "error", err, "retry_in", backoff)
		if sleep(ctx, backoff) != nil {
			return
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (s *Store) listenOnce(ctx context.Context, connected func()) error {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return fmt.Errorf("connect listener: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{s.cfg.Channel}.Sanitize()); err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Channel, err)
	}
	connected()
	if _, err := s.checkServer(ctx); err != nil {
		return fmt.Errorf("check for a server restart: %w", err)
	}
	s.broadcast() // notifications may have been missed while reconnecting
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return fmt.Errorf("wait for notification: %w", err)
		}
		s.broadcast()
	}
}

// notify tells other processes that events were appended. It runs outside
// the appending transactions on purpose: a transaction that NOTIFYs takes a
// database-wide lock through its commit, which would serialise all appends.
// Requests arriving while one NOTIFY is in flight, or within NotifyInterval
// of the last, collapse into one more.
func (s *Store) notify(ctx context.Context) {
	var failures int
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.notifyReq:
		}
		nctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := s.pool.Exec(nctx, `SELECT pg_notify($1, '')`, s.cfg.Channel)
		cancel()
		switch {
		case err == nil:
			failures = 0
			if sleep(ctx, s.cfg.NotifyInterval) != nil {
				return
			}
		case ctx.Err() != nil:
			return
		default:
			failures++
			if failures == 1 || failures%100 == 0 {
				s.log.Warn("event notification failed; other processes will see new events by polling", "error", err, "failures", failures)
			}
		}
	}
}
