package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
)

// DefaultCatchUpAttempts is how often CatchUp tries a read or a batch
// that fails with an error that may pass.
const DefaultCatchUpAttempts = 5

// Reader is what CatchUp needs of the event store: pages of the global
// log (domain.AllReader's ReadAll).
type Reader interface {
	ReadAll(ctx context.Context, opts domain.ReadAllOptions) ([]domain.RecordedEvent, error)
}

// CatchUpOptions configures CatchUp. Store and Projection are required;
// every other field has a documented default.
type CatchUpOptions struct {
	// Store is the event log.
	Store Reader
	// Projection is the read model to bring up to date.
	Projection Projection
	// StreamPrefix selects the streams the projection handles. Default
	// room.StreamPrefix, as the Runner's.
	StreamPrefix string
	// Batch is the most events read and applied at once. Default
	// domain.DefaultReadLimit.
	Batch int
	// Attempts bounds the tries of a read or a batch that fails with an
	// error that may pass (backing off from MinBackoff, doubling); an
	// *EventError is never retried. Defaults DefaultCatchUpAttempts and
	// DefaultMinBackoff.
	Attempts   int
	MinBackoff time.Duration
	// Logger receives retries; nil discards them.
	Logger *slog.Logger
	// Progress, when set, is called after each batch applied, from the
	// goroutine that called CatchUp.
	Progress func(CatchUpProgress)
}

// CatchUpProgress is how far a CatchUp has come.
type CatchUpProgress struct {
	// Applied counts the events handed to the projection so far.
	Applied int64
	// Checkpoint is the position of the last of them.
	Checkpoint domain.Position
}

// CatchUp applies to opts.Projection every event of its streams after its
// checkpoint and at or before upTo, in batches, and returns how far it
// got. It reads the next batch while the projection applies the current
// one, so the log's read rate and the projection's write rate overlap
// instead of adding up. It is what a rebuild runs: the same Apply as the
// Runner, but bounded, so that a shadow can be brought to exactly the
// position of a live projection. It does not follow the log past upTo.
//
// It returns ctx's error when ctx ends first (everything applied so far
// stays applied: each batch is atomic with its checkpoint), an
// *EventError (wrapped) when an event cannot be applied (also recorded
// with the projection when it is a FailureRecorder), and a *WrongLogError
// when the projection's checkpoint belongs to another log than the
// store's (see LogBinder); a checkpoint that records none is bound to the
// store's log first.
func CatchUp(ctx context.Context, opts CatchUpOptions, upTo domain.Position) (CatchUpProgress, error) {
	if opts.StreamPrefix == "" {
		opts.StreamPrefix = room.StreamPrefix
	}
	if opts.Batch <= 0 {
		opts.Batch = domain.DefaultReadLimit
	}
	if opts.Attempts <= 0 {
		opts.Attempts = DefaultCatchUpAttempts
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	name := opts.Projection.Name()
	log = log.With("projection", name)

	var cp domain.Position
	err := attempt(ctx, log, opts, "read the checkpoint", func() error {
		if err := bindStoreLog(ctx, opts.Store, opts.Projection); err != nil {
			return err
		}
		var err error
		cp, err = opts.Projection.Checkpoint(ctx)
		return err
	})
	if err != nil {
		return CatchUpProgress{Checkpoint: cp}, fmt.Errorf("projection %s: catch up: %w", name, err)
	}
	done := CatchUpProgress{Checkpoint: cp}
	if !cp.Less(upTo) {
		return done, nil
	}

	// The reader runs one batch ahead of the projection; it is stopped
	// and waited for before CatchUp returns.
	rctx, stop := context.WithCancel(ctx)
	pages := make(chan page, 1)
	var wg sync.WaitGroup
	wg.Go(func() { readAhead(rctx, log, opts, cp, upTo, pages) })
	defer func() {
		stop()
		for range pages { // unblock the reader
		}
		wg.Wait()
	}()

	for pg := range pages {
		if pg.err != nil {
			return done, fmt.Errorf("projection %s: catch up after %s: %w", name, done.Checkpoint, pg.err)
		}
		batch := pg.events
		err := attempt(ctx, log, opts, "apply a batch", func() error { return opts.Projection.Apply(ctx, batch) })
		if err != nil {
			if ctx.Err() == nil {
				recordError(ctx, log, opts.Projection, err)
			}
			return done, fmt.Errorf("projection %s: catch up after %s: %w", name, done.Checkpoint, err)
		}
		done.Applied += int64(len(batch))
		done.Checkpoint = batch[len(batch)-1].Position
		if opts.Progress != nil {
			opts.Progress(done)
		}
	}
	return done, ctx.Err()
}

// page is a batch read ahead, or the error that ended reading.
type page struct {
	events []domain.RecordedEvent
	err    error
}

// readAhead sends the batches after cp up to upTo to pages, then closes
// it.
func readAhead(ctx context.Context, log *slog.Logger, opts CatchUpOptions, after, upTo domain.Position, pages chan<- page) {
	defer close(pages)
	for {
		var evs []domain.RecordedEvent
		err := attempt(ctx, log, opts, "read the log", func() error {
			var err error
			evs, err = opts.Store.ReadAll(ctx, domain.ReadAllOptions{After: after, Limit: opts.Batch, StreamPrefix: opts.StreamPrefix})
			return err
		})
		if err != nil {
			if ctx.Err() == nil {
				pages <- page{err: err}
			}
			return
		}
		full := len(evs) == opts.Batch
		for i, ev := range evs {
			if upTo.Less(ev.Position) {
				evs, full = evs[:i], false
				break
			}
		}
		if len(evs) == 0 {
			return
		}
		select {
		case pages <- page{events: evs}:
		case <-ctx.Done():
			return
		}
		after = evs[len(evs)-1].Position
		if !full || !after.Less(upTo) {
			return
		}
	}
}

// attempt runs f until it succeeds, fails with an *EventError, ctx ends,
// or opts.Attempts tries have failed.
func attempt(ctx context.Context, log *slog.Logger, opts CatchUpOptions, what string, f func() error) error {
	bo := backoff{min: opts.MinBackoff, max: DefaultMaxBackoff}
	for try := 1; ; try++ {
		err := f()
		var ee *EventError
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.As(err, &ee) || errors.Is(err, domain.ErrPermanent) || errors.Is(err, ErrWrongLog) || try >= opts.Attempts:
			return err
		}
		d := bo.next()
		log.Warn("catch-up failed; retrying", "step", what, "error", err, "retry_in", d, "attempt", try)
		if !sleep(ctx, d) {
			return ctx.Err()
		}
	}
}
