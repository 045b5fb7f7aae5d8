package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/domain"
)

// Group commit of appends. Many rooms streaming answers at once each keep
// one append in flight; alone, each is a statement and a commit of its
// own, and PostgreSQL spends its CPU on statement and commit overhead
// rather than on rows. So appends queue for a few workers per pool (see
// StoreConfig.AppendWorkers); a worker takes every queued append, one per
// stream, up to AppendBatch, and writes them in one statement. An append
// that finds a worker idle is written at once when no other append is in
// flight; while others are, the worker holds it up to
// StoreConfig.AppendWindow for them to join.
//
// Each append of a batch keeps its own expectation and result: one whose
// expectation fails writes nothing while the others land. Anything that
// fails the whole statement (an event ID stored elsewhere, a race for a
// version with another worker or process, a lost connection) sends every
// append of the batch through appendOne alone, where it gets its own
// answer; idempotent retries make that safe even when the failed statement
// had committed. That follow-up work, and the reads that explain a failed
// expectation, run on the callers' goroutines, not the worker's, so the
// appends queued behind a batch never wait for its aftermath. A batch of
// one is the exception: the worker runs it as appendOne, follow-up
// included, as the append would have run without batching.

// batchSQL appends to several streams in one statement. $1 and $2 are the
// appends' streams and encoded expectations; $3 to $8 their events: the
// append each belongs to (1-based), its place in that append (1-based),
// then id, type, data and metadata. It returns, per append in order, the
// stream's version before the batch and, when the expectation held and it
// wrote, its last event's version and position. Events are inserted in
// argument order, so each stream's versions ascend in the global order.
// Like appendSQL it locks the events table before it takes a transaction
// id (see visibleBoundSQL).
const batchSQL = `WITH req AS MATERIALIZED (
	SELECT r.rn, r.stream, r.expected,
	       (SELECT coalesce(max(e.version), -1) FROM events e WHERE e.stream = r.stream) AS v
	  FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS r(stream, expected, rn)
), ins AS (
	INSERT INTO events (txid, stream, version, id, type, data, metadata)
	SELECT pg_current_xact_id()::text::bigint, req.stream, req.v + u.k, u.id, u.typ, u.dat::json, u.met::json
	  FROM unnest($3::bigint[], $4::bigint[], $5::uuid[], $6::text[], $7::text[], $8::text[]) WITH ORDINALITY AS u(rn, k, id, typ, dat, met, ord)
	  JOIN req ON req.rn = u.rn
	 WHERE req.expected = -1 OR (req.expected = -2 AND req.v = -1) OR (req.expected = -3 AND req.v >= 0) OR req.expected = req.v
	 ORDER BY u.ord
	RETURNING stream, version, txid, seq
)
SELECT req.v, i.version, i.txid, i.seq
  FROM req LEFT JOIN (SELECT stream, max(version) AS version, max(txid) AS txid, max(seq) AS seq FROM ins GROUP BY stream) AS i
    ON i.stream = req.stream
 ORDER BY req.rn`

// batchTimeout bounds one batch statement. A caller whose own context
// ends sooner stops waiting for it (as a cancelled statement, its append
// may or may not land).
const batchTimeout = 30 * time.Second

// AppendStats counts the store's appends and the statements that wrote
// them; Appends / Statements is the mean batch size.
type AppendStats struct {
	Appends    uint64 // valid Append calls
	Statements uint64 // append statements run, batches and single ones
}

type appendCounters struct{ appends, statements atomic.Uint64 }

// AppendStats returns the counts since NewStore.
func (s *Store) AppendStats() AppendStats {
	return AppendStats{Appends: s.stats.appends.Load(), Statements: s.stats.statements.Load()}
}

// A queued append is taken by a worker or withdrawn by its caller, never
// both: whoever moves it out of reqQueued owns it.
const (
	reqQueued int32 = iota
	reqTaken
	reqWithdrawn
)

type appendReq struct {
	ctx      context.Context
	stream   string
	expected domain.ExpectedVersion
	enc      encodedEvents
	state    atomic.Int32
	done     chan appendOutcome // buffered: a worker never waits for the caller
}

// appendOutcome is what a worker hands an append's caller: its result or
// error, or what the caller has still to do itself (see batcher.finish).
type appendOutcome struct {
	res domain.AppendResult
	err error
	// alone: the batch statement failed; the caller appends alone.
	alone bool
	// failed: the expectation did not hold with the stream at version
	// actual; the caller works out what that means (failedExpectation).
	failed bool
	actual int64
}

// batcher batches the appends of one pool.
type batcher struct {
	s    *Store
	pool *pgxpool.Pool
	reqs chan *appendReq
	// inflight counts the appends between their call and their answer:
	// when a worker finds more than it has taken, other writers are
	// appending at the same time and the store counts as busy.
	inflight atomic.Int64
}

// newBatcher starts AppendWorkers workers on s.wg; they stop when ctx ends.
func (s *Store) newBatcher(ctx context.Context, pool *pgxpool.Pool) *batcher {
	b := &batcher{s: s, pool: pool, reqs: make(chan *appendReq, s.cfg.AppendBatch*s.cfg.AppendWorkers)}
	for range s.cfg.AppendWorkers {
		s.wg.Go(func() { b.work(ctx) })
	}
	return b
}

// append queues one append and waits for its outcome.
func (b *batcher) append(ctx context.Context, stream string, expected domain.ExpectedVersion, enc encodedEvents) (domain.AppendResult, error) {
	b.inflight.Add(1)
	defer b.inflight.Add(-1)
	r := &appendReq{ctx: ctx, stream: stream, expected: expected, enc: enc, done: make(chan appendOutcome, 1)}
	select {
	case b.reqs <- r:
	case <-ctx.Done():
		return domain.AppendResult{}, fmt.Errorf("postgres: append to %s: nothing written: %w", stream, ctx.Err())
	case <-b.s.done:
		return b.s.appendOne(ctx, b.pool, stream, expected, enc)
	}
	select {
	case o := <-r.done:
		return b.finish(r, o)
	case <-ctx.Done():
		if r.state.CompareAndSwap(reqQueued, reqWithdrawn) {
			return domain.AppendResult{}, fmt.Errorf("postgres: append to %s: nothing written: %w", stream, ctx.Err())
		}
		// A worker is writing it; as with a cancelled statement, it may
		// or may not land.
		return domain.AppendResult{}, fmt.Errorf("postgres: append to %s: %w", stream, ctx.Err())
	case <-b.s.done:
		if r.state.CompareAndSwap(reqQueued, reqWithdrawn) {
			return b.s.appendOne(ctx, b.pool, stream, expected, enc)
		}
		o := <-r.done // its worker finishes the batch before it stops
		return b.finish(r, o)
	}
}

// finish turns a worker's outcome into the append's answer, doing on the
// caller's goroutine whatever the worker left to it.
func (b *batcher) finish(r *appendReq, o appendOutcome) (domain.AppendResult, error) {
	switch {
	case o.alone:
		return b.s.appendOne(r.ctx, b.pool, r.stream, r.expected, r.enc)
	case o.failed:
		return b.s.failedExpectation(r.ctx, r.stream, r.expected, r.enc.ids, o.actual)
	}
	return o.res, o.err
}

// work takes batches off the queue until ctx ends. Appends it cannot take
// yet (a second one for a stream already in the batch, or one over
// AppendBatch) wait for its next batch; when it stops, their callers see
// the store closed and write them themselves.
func (b *batcher) work(ctx context.Context) {
	limit := b.s.cfg.AppendBatch
	var carry []*appendReq
	for ctx.Err() == nil {
		batch := make([]*appendReq, 0, limit)
		streams := make(map[string]struct{}, limit)
		var next []*appendReq
		take := func(r *appendReq) {
			if _, dup := streams[r.stream]; dup || len(batch) == limit {
				next = append(next, r)
				return
			}
			if !r.state.CompareAndSwap(reqQueued, reqTaken) {
				return // its caller gave up on it
			}
			streams[r.stream] = struct{}{}
			batch = append(batch, r)
		}
		for _, r := range carry {
			take(r)
		}
		if len(batch) == 0 {
			select {
			case <-ctx.Done():
				return
			case r := <-b.reqs:
				take(r)
			}
		}
	drain:
		for range 2 * limit {
			if len(batch) == limit {
				break
			}
			select {
			case r := <-b.reqs:
				take(r)
			default:
				break drain
			}
		}
		if w := b.s.cfg.AppendWindow; w > 0 && len(batch) > 0 && len(batch) < limit && b.inflight.Load() > int64(len(batch)) {
			b.gather(ctx, w, take, func() bool { return len(batch) == limit })
		}
		carry = next
		if len(batch) > 0 {
			b.run(batch)
		}
	}
}

// gather takes the appends that arrive within w, until full says the
// batch is.
func (b *batcher) gather(ctx context.Context, w time.Duration, take func(*appendReq), full func() bool) {
	t := time.NewTimer(w)
	defer t.Stop()
	for !full() {
		select {
		case r := <-b.reqs:
			take(r)
		case <-t.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// run writes a batch and hands every append its outcome. A batch of one is
// its append's own statement (appendOne); a batch whose statement fails
// tells every caller to append alone.
func (b *batcher) run(batch []*appendReq) {
	if len(batch) == 1 {
		r := batch[0]
		res, err := b.s.appendOne(r.ctx, b.pool, r.stream, r.expected, r.enc)
		r.done <- appendOutcome{res: res, err: err}
		return
	}
	// Every batch writes its streams in the same order, so two batches
	// that share streams (two workers, or two stores) wait for one another
	// rather than deadlock, which PostgreSQL breaks only after
	// deadlock_timeout.
	slices.SortFunc(batch, func(x, y *appendReq) int { return strings.Compare(x.stream, y.stream) })
	outs, err := b.s.appendMany(b.pool, batch)
	if err != nil {
		b.s.log.Debug("batched append failed; its appends go again one by one", "appends", len(batch), "error", err)
		for _, r := range batch {
			r.done <- appendOutcome{alone: true}
		}
		return
	}
	for i, r := range batch {
		r.done <- outs[i]
	}
}

// appendMany runs batchSQL for batch, whose streams are distinct. An error
// means the statement failed or its answer could not be read (so it may
// have committed; each caller's appendOne then finds its append a retry);
// otherwise every append has its outcome: its result, or that its
// expectation failed and at what version (for its caller to explain, see
// batcher.finish).
func (s *Store) appendMany(pool *pgxpool.Pool, batch []*appendReq) ([]appendOutcome, error) {
	streams := make([]string, len(batch))
	expected := make([]int64, len(batch))
	var n int
	for i, r := range batch {
		streams[i] = r.stream
		expected[i] = encodeExpected(r.expected)
		n += len(r.enc.ids)
	}
	owner := make([]int64, 0, n)
	place := make([]int64, 0, n)
	ids := make([][16]byte, 0, n)
	types := make([]string, 0, n)
	data := make([]string, 0, n)
	meta := make([]*string, 0, n)
	for i, r := range batch {
		for k := range r.enc.ids {
			owner = append(owner, int64(i+1))
			place = append(place, int64(k+1))
		}
		ids = append(ids, r.enc.ids...)
		types = append(types, r.enc.types...)
		data = append(data, r.enc.data...)
		meta = append(meta, r.enc.meta...)
	}

	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	s.stats.statements.Add(1)
	rows, err := pool.Query(ctx, batchSQL, streams, expected, owner, place, ids, types, data, meta)
	if err != nil {
		return nil, fmt.Errorf("postgres: append to %d streams in one statement: %w", len(batch), err)
	}
	type row struct {
		actual           int64
		last, commit, pr *int64
	}
	got := make([]row, 0, len(batch))
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.actual, &r.last, &r.commit, &r.pr); err != nil {
			rows.Close()
			return nil, fmt.Errorf("postgres: append to %d streams in one statement: %w", len(batch), err)
		}
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: append to %d streams in one statement: %w", len(batch), err)
	}
	if len(got) != len(batch) {
		return nil, fmt.Errorf("postgres: append to %d streams in one statement: %d results", len(batch), len(got))
	}

	outs := make([]appendOutcome, len(batch))
	wrote := false
	for i, g := range got {
		if g.last == nil {
			outs[i] = appendOutcome{failed: true, actual: g.actual}
			continue
		}
		wrote = true
		outs[i].res = domain.AppendResult{Version: *g.last, Position: domain.Position{Commit: uint64(*g.commit), Prepare: uint64(*g.pr)}}
	}
	if wrote {
		s.appended()
	}
	return outs, nil
}
