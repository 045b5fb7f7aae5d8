package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
)

// FeedConfig configures a Feed. Zero fields take the documented defaults.
type FeedConfig struct {
	// StreamPrefix selects the streams the Feed reads; a subscriber asking
	// for other streams is served by the store directly. Default
	// room.StreamPrefix.
	StreamPrefix string
	// Batch is the most events a subscriber's handler gets at once: a
	// batch of this size means the subscriber is behind. Set it to the
	// store's subscription batch (a Runner's FullBatch). Default
	// domain.DefaultReadLimit.
	Batch int
	// Buffer is the most events the Feed keeps for subscribers that are
	// behind its head; one further behind reads the store itself until it
	// catches up. Default 65536.
	Buffer int
	// MinBackoff and MaxBackoff bound the waits after a failed read of the
	// store. Defaults DefaultMinBackoff and DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// Logger receives the store's failures; nil discards them.
	Logger *slog.Logger
}

// Feed is one subscription to the global log that every reader in the
// process shares: the WebSocket hub and each projection's Runner subscribe
// to the Feed, which reads the store once and fans each event out to all
// of them in memory, in the store's order. However many readers a process
// runs, the store sees one. A subscriber starting behind the Feed (a
// projection catching up from its checkpoint) reads the store itself until
// it reaches the events the Feed holds, then follows the Feed; one that
// falls more than Buffer events behind does the same. Every subscriber gets
// every event of its streams after its position exactly once, in order.
//
// When the store ends the Feed's subscription with domain.ErrStoreRestarted
// (it may have lost its newest events, and reuse their positions), the
// Feed drops what it holds, starts again from the store's new head, and
// ends every SubscribeAll with that error: each subscriber starts again
// from a position the store kept, as it would over the store itself. A
// failure no retry can cure (domain.ErrPermanent) ends Run and every
// SubscribeAll with it.
//
// Feed passes ReadAll and HeadPosition through to the store, so it is a
// Source for Runners. Run must be running for SubscribeAll to deliver.
type Feed struct {
	store Source
	cfg   FeedConfig
	log   *slog.Logger

	ready chan struct{} // closed once Run has found where the log stands

	mu      sync.Mutex
	changed chan struct{} // closed and replaced when events arrive
	// buf[start:] are the events after base, up to head, in order: every
	// event of the Feed's streams in that range.
	buf         []domain.RecordedEvent
	start       int
	base, head  domain.Position
	subscribers map[*feedSub]struct{} // those following the buffer
	epoch       int                   // store restarts seen
	err         error                 // the permanent failure that ended Run
}

// feedSub is one SubscribeAll following the buffer: pos is the position
// of the last event it has handled, which the buffer keeps events after;
// epoch the Feed's when it began.
type feedSub struct {
	pos   domain.Position
	epoch int
}

// NewFeed returns a Feed over store; call Run.
func NewFeed(store Source, cfg FeedConfig) *Feed {
	if cfg.StreamPrefix == "" {
		cfg.StreamPrefix = room.StreamPrefix
	}
	if cfg.Batch <= 0 {
		cfg.Batch = domain.DefaultReadLimit
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = 65536
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Feed{store: store, cfg: cfg, log: log.With("component", "log_feed"), ready: make(chan struct{}),
		changed: make(chan struct{}), subscribers: map[*feedSub]struct{}{}}
}

// Ready is closed once Run has found where the log stands.
func (f *Feed) Ready() <-chan struct{} { return f.ready }

// Run follows the log from its head until ctx ends, and returns nil then.
// A failed read of the store is logged and retried with backoff.
func (f *Feed) Run(ctx context.Context) error {
	bo := backoff{min: f.cfg.MinBackoff, max: f.cfg.MaxBackoff}
	var head domain.Position
	for {
		var err error
		if head, err = f.store.HeadPosition(ctx); err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, domain.ErrPermanent) {
			err = f.fail(fmt.Errorf("read the log's head: %w", err))
			close(f.ready) // to the subscribers waiting: they end with err
			return err
		}
		if !f.retry(ctx, &bo, fmt.Errorf("read the log's head: %w", err)) {
			return nil
		}
	}
	f.mu.Lock()
	f.base, f.head = head, head
	f.mu.Unlock()
	close(f.ready)
	for {
		f.mu.Lock()
		after := f.head
		f.mu.Unlock()
		err := f.store.SubscribeAll(ctx, domain.SubscribeAllOptions{After: after, StreamPrefix: f.cfg.StreamPrefix}, f.add)
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case err == nil:
			err = errors.New("the subscription ended without an error")
		case errors.Is(err, domain.ErrPermanent):
			return f.fail(fmt.Errorf("follow the log after %s: %w", after, err))
		case errors.Is(err, domain.ErrStoreRestarted):
			if !f.restart(ctx, &bo) {
				return nil
			}
			continue
		}
		if !f.retry(ctx, &bo, fmt.Errorf("follow the log after %s: %w", after, err)) {
			return nil
		}
	}
}

// restart drops the buffer, whose events the store may have lost, and
// starts the Feed again from the store's new head, in a new epoch that
// ends the subscriptions of the old one. It reports false when ctx ended.
func (f *Feed) restart(ctx context.Context, bo *backoff) bool {
	f.log.Warn("the event store restarted and may have lost its newest events; following it again from its head, and every subscriber from a position it kept")
	for {
		head, err := f.store.HeadPosition(ctx)
		if err == nil {
			f.mu.Lock()
			f.buf, f.start = nil, 0
			f.base, f.head = head, head
			f.epoch++
			close(f.changed)
			f.changed = make(chan struct{})
			f.mu.Unlock()
			bo.reset()
			return true
		}
		if ctx.Err() != nil || !f.retry(ctx, bo, fmt.Errorf("read the log's head after a restart: %w", err)) {
			return false
		}
	}
}

// fail ends every subscription with err, and returns it.
func (f *Feed) fail(err error) error {
	f.mu.Lock()
	f.err = err
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
	return err
}

func (f *Feed) retry(ctx context.Context, bo *backoff, err error) bool {
	d := bo.next()
	f.log.Warn("log feed failed; retrying", "error", err, "retry_in", d, "failures", bo.failures)
	return sleep(ctx, d)
}

// add appends a batch the store delivered and drops what no subscriber
// following the buffer needs any more (or, past Buffer, what the slowest
// need: they read the store instead).
func (f *Feed) add(_ context.Context, batch []domain.RecordedEvent) error {
	if len(batch) == 0 {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	batch = batch[f.after(batch, f.head):] // a redelivery (at least once) changes nothing
	if len(batch) == 0 {
		return nil
	}
	f.buf = append(f.buf, batch...)
	f.head = batch[len(batch)-1].Position
	keep := f.head
	for s := range f.subscribers {
		if s.pos.Less(keep) {
			keep = s.pos
		}
	}
	live := f.buf[f.start:]
	drop := f.after(live, keep)
	drop = max(drop, len(live)-f.cfg.Buffer)
	if drop > 0 {
		f.base = live[drop-1].Position
		f.start += drop
	}
	// Compact into a new array once most of it is dropped: subscribers may
	// still be handling slices of the old one.
	if f.start > 0 && f.start >= len(f.buf)/2 {
		f.buf, f.start = slices.Clone(f.buf[f.start:]), 0
	}
	close(f.changed)
	f.changed = make(chan struct{})
	return nil
}

// after returns the index of the first event of evs (in log order) after
// pos, len(evs) when none is.
func (f *Feed) after(evs []domain.RecordedEvent, pos domain.Position) int {
	i, _ := slices.BinarySearchFunc(evs, pos, func(ev domain.RecordedEvent, p domain.Position) int {
		if p.Less(ev.Position) {
			return 1
		}
		return -1
	})
	return i
}

// SubscribeAll implements domain.Subscriber (and Source): h gets the
// events of opts.StreamPrefix after opts.After, in order, until ctx ends or
// h fails. Read errors are retried; it returns ctx's error or h's.
func (f *Feed) SubscribeAll(ctx context.Context, opts domain.SubscribeAllOptions, h domain.Handler) error {
	if !strings.HasPrefix(opts.StreamPrefix, f.cfg.StreamPrefix) {
		return f.store.SubscribeAll(ctx, opts, h) // streams the Feed does not read
	}
	select {
	case <-f.ready:
	case <-ctx.Done():
		return ctx.Err()
	}
	f.mu.Lock()
	s := &feedSub{pos: opts.After, epoch: f.epoch}
	f.mu.Unlock()
	defer f.leave(s)
	bo := backoff{min: f.cfg.MinBackoff, max: f.cfg.MaxBackoff}
	for {
		batch, base, changed, behind, err := f.next(s, opts.StreamPrefix)
		switch {
		case err != nil:
			return err
		case behind:
			evs, err := f.store.ReadAll(ctx, domain.ReadAllOptions{After: s.pos, StreamPrefix: opts.StreamPrefix, Limit: f.cfg.Batch})
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if errors.Is(err, domain.ErrPermanent) {
					return fmt.Errorf("catch up after %s: %w", s.pos, err)
				}
				if !f.retry(ctx, &bo, fmt.Errorf("catch up after %s: %w", s.pos, err)) {
					return ctx.Err()
				}
				continue
			}
			bo.reset()
			if len(evs) == 0 {
				// Nothing of these streams is readable after pos, and the
				// store has delivered the Feed everything up to base: none
				// lies between them.
				f.moveTo(s, base)
				continue
			}
			if err := h(ctx, evs); err != nil {
				return err
			}
			f.moveTo(s, evs[len(evs)-1].Position)
		case changed != nil:
			select {
			case <-changed:
			case <-ctx.Done():
				return ctx.Err()
			}
		default:
			if len(batch.events) > 0 {
				if err := h(ctx, batch.events); err != nil {
					return err
				}
			}
			f.moveTo(s, batch.last)
		}
	}
}

// feedBatch is what a subscriber takes from the buffer: the events of its
// streams, and the position of the last event it passed.
type feedBatch struct {
	events []domain.RecordedEvent
	last   domain.Position
}

// next takes s's next batch from the buffer. It reports behind when s's
// position is before the buffer (with the buffer's base); otherwise a
// batch, or, when there is nothing after s yet, the channel closed when
// events arrive. Its error ends s: the store restarted since s began
// (domain.ErrStoreRestarted), or Run failed for good.
func (f *Feed) next(s *feedSub, prefix string) (feedBatch, domain.Position, <-chan struct{}, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.err != nil:
		return feedBatch{}, f.base, nil, false, f.err
	case s.epoch != f.epoch:
		return feedBatch{}, f.base, nil, false, domain.ErrStoreRestarted
	}
	if s.pos.Less(f.base) {
		delete(f.subscribers, s)
		return feedBatch{}, f.base, nil, true, nil
	}
	f.subscribers[s] = struct{}{}
	live := f.buf[f.start:]
	i := f.after(live, s.pos)
	if i == len(live) {
		return feedBatch{}, f.base, f.changed, false, nil
	}
	evs := live[i:min(len(live), i+f.cfg.Batch)]
	b := feedBatch{events: evs, last: evs[len(evs)-1].Position}
	if prefix != f.cfg.StreamPrefix {
		b.events = nil
		for _, ev := range evs {
			if strings.HasPrefix(ev.Stream, prefix) {
				b.events = append(b.events, ev)
			}
		}
	}
	return b, f.base, nil, false, nil
}

// moveTo records that s has handled everything up to pos.
func (f *Feed) moveTo(s *feedSub, pos domain.Position) {
	f.mu.Lock()
	if s.pos.Less(pos) {
		s.pos = pos
	}
	f.mu.Unlock()
}

func (f *Feed) leave(s *feedSub) {
	f.mu.Lock()
	delete(f.subscribers, s)
	f.mu.Unlock()
}

// ReadAll implements Source: the store's.
func (f *Feed) ReadAll(ctx context.Context, opts domain.ReadAllOptions) ([]domain.RecordedEvent, error) {
	return f.store.ReadAll(ctx, opts)
}

// Head returns the position of the last event of its streams the Feed
// has read (or the head it started from), and whether it is following the
// log: a head that costs no read of the store, as fresh as the Feed's
// last read. Every event at or before it is readable. HeadPosition reads
// the store's exact head, which on PostgreSQL means reading pg_locks.
func (f *Feed) Head() (domain.Position, bool) {
	select {
	case <-f.ready:
	default:
		return domain.Position{}, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.head, f.err == nil
}

// HeadPosition implements Source: the store's.
func (f *Feed) HeadPosition(ctx context.Context) (domain.Position, error) {
	return f.store.HeadPosition(ctx)
}
