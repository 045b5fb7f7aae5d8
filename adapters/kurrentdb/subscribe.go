package kurrentdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/parleychat/parley/domain"
)

// systemStreams matches the streams KurrentDB keeps for itself; SubscribeAll
// without a prefix filters them out on the server.
const systemStreams = "^[^$]"

// SubscribeAll implements domain.Subscriber. It follows a server-side
// filtered catch-up subscription to $all: by stream prefix when
// opts.StreamPrefix is set, else excluding system streams.
func (s *Store) SubscribeAll(ctx context.Context, opts domain.SubscribeAllOptions, h domain.Handler) error {
	filter := &esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Regex: systemStreams}
	if opts.StreamPrefix != "" {
		filter = &esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Prefixes: []string{opts.StreamPrefix}}
	}
	after := opts.After // the position of the last event accepted for delivery
	f := &follower{
		name:     "$all",
		logger:   s.logger,
		minDelay: s.minDelay,
		maxDelay: s.maxDelay,
		checkpoint: func() slog.Attr {
			return slog.String("after", after.String())
		},
		open: func(ctx context.Context) (subscription, error) {
			var from esdb.AllPosition = esdb.Start{}
			if !after.IsZero() {
				from = fromPosition(after) // exclusive
			}
			return s.subscribeToAll(ctx, esdb.SubscribeToAllOptions{From: from, Filter: filter})
		},
		accept: func(r *esdb.RecordedEvent) (domain.RecordedEvent, bool) {
			pos := toPosition(r.Position)
			if !after.Less(pos) || isSystem(r) || !strings.HasPrefix(r.StreamID, opts.StreamPrefix) {
				return domain.RecordedEvent{}, false
			}
			after = pos
			return toRecorded(r), true
		},
	}
	return f.run(ctx, h)
}

// SubscribeStream implements domain.Subscriber. A stream that does not
// exist yet is waited for: the server confirms the subscription and sends
// its events once they are written.
func (s *Store) SubscribeStream(ctx context.Context, stream string, after int64, h domain.Handler) error {
	if err := domain.ValidateStreamName(stream); err != nil {
		return err
	}
	after = max(after, domain.NoVersion) // the version of the last event accepted for delivery
	f := &follower{
		name:     stream,
		logger:   s.logger,
		minDelay: s.minDelay,
		maxDelay: s.maxDelay,
		checkpoint: func() slog.Attr {
			return slog.Int64("after", after)
		},
		open: func(ctx context.Context) (subscription, error) {
			var from esdb.StreamPosition = esdb.Start{}
			if after != domain.NoVersion {
				from = esdb.Revision(uint64(after)) // exclusive
			}
			return s.subscribeToStream(ctx, stream, esdb.SubscribeToStreamOptions{From: from})
		},
		accept: func(r *esdb.RecordedEvent) (domain.RecordedEvent, bool) {
			v := int64(r.EventNumber)
			if v <= after || r.StreamID != stream {
				return domain.RecordedEvent{}, false
			}
			after = v
			return toRecorded(r), true
		},
	}
	return f.run(ctx, h)
}

// openSubscription opens a server subscription on the current client
// with open. The subscription keeps the client in use until it is closed.
func (s *Store) openSubscription(ctx context.Context, open func(ctx context.Context, ec *esdb.Client) (*esdb.Subscription, error)) (subscription, error) {
	c, err := s.acquire()
	if err != nil {
		return nil, err
	}
	s.hold(c) // the subscription's own use, released when it closes
	bctx, unbind := s.bound(ctx)
	var sub *esdb.Subscription
	err, abandoned := s.run(bctx, c, func(ctx context.Context, ec *esdb.Client) (err error) {
		sub, err = open(ctx, ec)
		return err
	}, func() {
		if sub != nil {
			_ = sub.Close()
		}
		unbind()
		s.releaseSub(c)
	})
	switch {
	case abandoned:
		return nil, err
	case err != nil:
		unbind()
		s.releaseSub(c)
		if ctx.Err() == nil && s.ctx.Err() != nil {
			return nil, errStoreClosed
		}
		return nil, err
	}
	return &clientSub{Subscription: sub, release: sync.OnceFunc(func() { unbind(); s.releaseSub(c) })}, nil
}

// clientSub is a server subscription that releases its client on Close.
type clientSub struct {
	*esdb.Subscription
	release func()
}

func (c *clientSub) Close() error {
	err := c.Subscription.Close()
	c.release()
	return err
}

// subscription is the part of *esdb.Subscription a follower uses.
type subscription interface {
	// Recv blocks for the next event; it reports a drop, Close included,
	// as SubscriptionDropped.
	Recv() *esdb.SubscriptionEvent
	Close() error
}

// follower delivers one logical subscription over as many server
// subscriptions as drops make necessary.
type follower struct {
	name     string // "$all" or the stream, for logs and errors
	logger   *slog.Logger
	minDelay time.Duration
	maxDelay time.Duration
	// checkpoint describes where a new subscription would start, for logs.
	checkpoint func() slog.Attr
	// open starts a server subscription after the checkpoint.
	open func(ctx context.Context) (subscription, error)
	// accept converts a received event and moves the checkpoint past it,
	// or reports false for an event not to deliver: a system event,
	// another stream's, or one at or before the checkpoint.
	accept func(*esdb.RecordedEvent) (domain.RecordedEvent, bool)
}

// handlerError carries a handler's error out of follower.once.
type handlerError struct{ err error }

func (e *handlerError) Error() string { return e.err.Error() }
func (e *handlerError) Unwrap() error { return e.err }

// run subscribes, delivers, and resubscribes after drops, waiting
// minDelay, then twice as long after each attempt that delivered nothing,
// up to maxDelay. It returns ctx's error once ctx is done, the handler's
// error when the handler fails, and an error matching domain.ErrPermanent
// when no retry can cure the failure (see mapError) or the store is
// closed.
func (f *follower) run(ctx context.Context, h domain.Handler) error {
	delay := f.minDelay
	for {
		started := time.Now()
		delivered, err := f.once(ctx, h)
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if herr, ok := errors.AsType[*handlerError](err); ok {
			return herr.err
		}
		if permanent(err) {
			return mapError(ctx, err, "subscribe to %s after %s", f.name, f.checkpoint().Value)
		}
		if delivered > 0 || time.Since(started) >= f.maxDelay {
			delay = f.minDelay
		}
		f.logger.Warn("kurrentdb: subscription dropped; resubscribing",
			"subscription", f.name, f.checkpoint(), "retry_in", delay, "error", err)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, f.maxDelay)
	}
}

// once runs one server subscription until it drops, ctx is done or the
// handler fails, and returns how many events it delivered and why it
// ended. A reader goroutine, owned and waited for here, receives events
// ahead of the handler so that those already there go out as one batch.
func (f *follower) once(ctx context.Context, h domain.Handler) (delivered int, err error) {
	sub, err := f.open(ctx)
	if err != nil {
		return 0, fmt.Errorf("open subscription: %w", err)
	}
	received := make(chan *esdb.SubscriptionEvent, maxBatch)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			ev := sub.Recv()
			select {
			case received <- ev:
			case <-stop:
				return
			}
			if ev.SubscriptionDropped != nil {
				return
			}
		}
	})
	defer func() {
		close(stop)
		_ = sub.Close() // unblocks Recv
		wg.Wait()
	}()

	for {
		var ev *esdb.SubscriptionEvent
		select {
		case ev = <-received:
		case <-ctx.Done():
			return delivered, ctx.Err()
		}
		var batch []domain.RecordedEvent
		var dropped error
		for {
			batch, dropped = f.collect(batch, ev)
			if dropped != nil || len(batch) == maxBatch {
				break
			}
			select {
			case ev = <-received:
				continue
			default:
			}
			break
		}
		if len(batch) > 0 {
			if err := h(ctx, batch); err != nil {
				return delivered, &handlerError{err}
			}
			delivered += len(batch)
		}
		if dropped != nil {
			return delivered, dropped
		}
	}
}

// collect adds ev to batch if it is an event to deliver, or returns why
// the subscription dropped. Checkpoints, caught-up and fell-behind notices
// are skipped: the store resumes from delivered events only (a filtered
// subscription's checkpoint can be past an event not yet delivered:
// KurrentDB issue 4970).
func (f *follower) collect(batch []domain.RecordedEvent, ev *esdb.SubscriptionEvent) ([]domain.RecordedEvent, error) {
	switch {
	case ev.SubscriptionDropped != nil:
		err := ev.SubscriptionDropped.Error
		if err == nil {
			err = errors.New("the server ended the subscription")
		}
		return batch, fmt.Errorf("subscription dropped: %w", err)
	case ev.EventAppeared != nil:
		if rec, ok := f.accept(ev.EventAppeared.OriginalEvent()); ok {
			batch = append(batch, rec)
		}
	}
	return batch, nil
}
