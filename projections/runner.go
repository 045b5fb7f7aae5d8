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

// Default Runner settings.
const (
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
)

// waitPoll is how often WaitFor looks at the log when the checkpoint does
// not move: the position waited for may be one of a stream the projection
// does not handle, which it passes without applying anything.
const waitPoll = 250 * time.Millisecond

// recordTimeout bounds a best-effort RecordError.
const recordTimeout = 5 * time.Second

// State says what a Runner is doing.
type State string

// Runner states.
const (
	StateIdle     State = "idle"     // Run has not started, or has returned after its context ended
	StateRunning  State = "running"  // applying events, or caught up and following the log
	StateRetrying State = "retrying" // the last attempt failed; waiting to try again
	StateFailed   State = "failed"   // stopped by an event it cannot apply, or a log it cannot follow; see LastError
)

// Runner runs one Projection: it subscribes to the log after the
// projection's checkpoint and applies the store's batches in order. Set
// the exported fields, then call Run; Status and WaitFor may be called
// from other goroutines at any time. A Runner must not be copied after
// first use.
type Runner struct {
	// Store is the event log. Required.
	Store Source
	// Projection is the read model. Required.
	Projection Projection
	// Logger receives retries and failures; nil discards them.
	Logger *slog.Logger
	// StreamPrefix selects the streams the projection handles. Default
	// room.StreamPrefix ("room-").
	StreamPrefix string
	// MinBackoff is the first wait after a failed attempt; it doubles with
	// each further failure up to MaxBackoff and resets after a success.
	// Defaults DefaultMinBackoff and DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// Interval is the least time between the starts of two applies while
	// the runner follows the live log: after a batch smaller than
	// FullBatch it waits out the rest of Interval, so the events that
	// arrive meanwhile are applied together, in one transaction. Under a
	// busy log (many answers streaming) that turns thousands of small
	// transactions a second into a few large ones; the read model lags by
	// up to Interval, which readers that need the newest state cover by
	// reading the stream after the version it reflects. Zero applies each
	// batch as soon as it is read.
	Interval time.Duration
	// FullBatch is the size of a batch that means the runner is behind
	// (catching up): it applies the next at once. Set it with Interval, to
	// the store's subscription batch (SubscriptionBatch of the Postgres
	// and KurrentDB stores): smaller batches count as live and are paced,
	// so too high a value slows catch-up to one batch per Interval. Default
	// domain.DefaultReadLimit, the Postgres store's default.
	FullBatch int

	mu      sync.Mutex
	running bool
	changed chan struct{} // closed and replaced when the status changes
	st      Status
	known   bool  // st.Checkpoint has been read from the projection
	failure error // why the last Run stopped, when it failed
}

// Status is a Runner's progress, for metrics and operators.
type Status struct {
	// Name is the projection's name.
	Name string
	// State is what the runner is doing.
	State State
	// Checkpoint is the position of the last event applied.
	Checkpoint domain.Position
	// Head is the position of the log's last readable event, of any stream.
	Head domain.Position
	// CaughtUp reports that no event the projection handles lies between
	// Checkpoint and Head.
	CaughtUp bool
	// Lag is how long ago the oldest event not yet applied was recorded;
	// zero when caught up.
	Lag time.Duration
	// Events counts the events applied since Run started.
	Events uint64
	// LastEventAt is when the last event applied was recorded.
	LastEventAt time.Time
	// LastError is the last failure, kept after the runner recovers;
	// LastErrorAt says when it happened.
	LastError   string
	LastErrorAt time.Time
}

// errRunning is Run's answer while another Run of the same Runner is active.
var errRunning = errors.New("already running")

// Run applies the log to the projection until ctx ends (it returns nil),
// an event cannot be applied (it returns the *EventError, wrapped with the
// projection's name), the projection's checkpoint belongs to another
// log than the store's (a *WrongLogError; see LogBinder), or the store
// cannot follow the log from the checkpoint and no retry can change that
// (it returns the store's error, which matches domain.ErrPermanent: a
// checkpoint the store does not know, say). A stop is recorded where the
// projection keeps failures. Other failures to read the checkpoint,
// follow the log or apply a batch are logged, shown in Status and
// retried with backoff.
func (r *Runner) Run(ctx context.Context) error {
	name := r.Projection.Name()
	if err := r.start(name); err != nil {
		return fmt.Errorf("projection %s: %w", name, err)
	}
	log := r.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("projection", name)
	bo := backoff{min: r.MinBackoff, max: r.MaxBackoff}
	opts := domain.SubscribeAllOptions{StreamPrefix: r.prefix()}

	var failure error
	defer func() { r.finish(failure) }()
	for {
		err := bindStoreLog(ctx, r.Store, r.Projection)
		if errors.Is(err, ErrWrongLog) {
			failure = err
			log.Error("projection stopped: its checkpoint belongs to another log", "error", failure)
			recordError(ctx, log, r.Projection, failure)
			return failure
		}
		var cp domain.Position
		if err == nil {
			cp, err = r.Projection.Checkpoint(ctx)
		}
		if err == nil {
			r.setCheckpoint(cp)
			opts.After = cp
			err = r.Store.SubscribeAll(ctx, opts, func(ctx context.Context, batch []domain.RecordedEvent) error {
				began := time.Now()
				if err := r.apply(ctx, log, &bo, batch); err != nil {
					return err
				}
				return r.pace(ctx, began, len(batch))
			})
		}
		if ctx.Err() != nil {
			return nil
		}
		var stop stopError
		if errors.As(err, &stop) {
			failure = stop.err
			log.Error("projection stopped: an event cannot be applied", "error", failure)
			recordError(ctx, log, r.Projection, failure)
			return fmt.Errorf("projection %s: %w", name, failure)
		}
		if errors.Is(err, domain.ErrPermanent) {
			failure = fmt.Errorf("follow the log after %s: %w", opts.After, err)
			log.Error("projection stopped: the log cannot be followed from its checkpoint, and no retry can change that", "error", err, "checkpoint", opts.After.String())
			recordStop(ctx, log, r.Projection, opts.After, failure)
			return fmt.Errorf("projection %s: %w", name, failure)
		}
		if err == nil {
			err = errors.New("the subscription ended without an error")
		}
		if !r.retry(ctx, log, &bo, fmt.Errorf("follow the log: %w", err)) {
			return nil
		}
	}
}

// pace waits out the rest of Interval after a batch of n events that
// began applying at began, unless the batch was full.
func (r *Runner) pace(ctx context.Context, began time.Time, n int) error {
	full := r.FullBatch
	if full <= 0 {
		full = domain.DefaultReadLimit
	}
	rest := r.Interval - time.Since(began)
	if n >= full || rest <= 0 {
		return nil
	}
	if !sleep(ctx, rest) {
		return ctx.Err()
	}
	return nil
}

// sleep waits for d; it returns false when ctx ends first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// stopError carries a failure that ends Run out of the subscription.
type stopError struct{ err error }

func (e stopError) Error() string { return e.err.Error() }

// apply applies one batch, retrying failures that may pass.
func (r *Runner) apply(ctx context.Context, log *slog.Logger, bo *backoff, batch []domain.RecordedEvent) error {
	batch = r.unseen(batch)
	if len(batch) == 0 {
		return nil
	}
	for {
		err := r.Projection.Apply(ctx, batch)
		if err == nil {
			if bo.failures > 0 {
				log.Info("projection recovered", "events", len(batch), "position", batch[len(batch)-1].Position.String())
			}
			bo.reset()
			r.applied(batch)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ee *EventError
		if errors.As(err, &ee) {
			return stopError{err}
		}
		first, last := batch[0], batch[len(batch)-1]
		if !r.retry(ctx, log, bo, fmt.Errorf("apply %d events from %s to %s: %w", len(batch), first.Position, last.Position, err)) {
			return ctx.Err()
		}
	}
}

// retry records a failure that may pass and waits before the next attempt.
// It returns false when ctx ends first.
func (r *Runner) retry(ctx context.Context, log *slog.Logger, bo *backoff, err error) bool {
	d := bo.next()
	log.Warn("projection failed; retrying", "error", err, "retry_in", d, "failures", bo.failures)
	r.mu.Lock()
	r.st.State = StateRetrying
	r.st.LastError, r.st.LastErrorAt = err.Error(), time.Now()
	r.notifyLocked()
	r.mu.Unlock()
	recordError(ctx, log, r.Projection, err)
	return sleep(ctx, d)
}

// recordError hands err to projection p when it keeps errors (best
// effort): an *EventError that stops its driver to a FailureRecorder with
// its position, any other error to an ErrorRecorder.
func recordError(ctx context.Context, log *slog.Logger, p Projection, err error) {
	var ee *EventError
	if errors.As(err, &ee) {
		recordStop(ctx, log, p, ee.Position, err)
		return
	}
	rctx, cancel := context.WithTimeout(ctx, recordTimeout)
	defer cancel()
	if rec, ok := p.(ErrorRecorder); ok {
		if rerr := rec.RecordError(rctx, err.Error()); rerr != nil && ctx.Err() == nil {
			log.Warn("projection could not record its error", "error", rerr)
		}
	}
}

// recordStop hands err, which stopped the driver at position at, to
// projection p when it keeps failures (best effort), else to its
// ErrorRecorder.
func recordStop(ctx context.Context, log *slog.Logger, p Projection, at domain.Position, err error) {
	rctx, cancel := context.WithTimeout(ctx, recordTimeout)
	defer cancel()
	var rerr error
	if fr, ok := p.(FailureRecorder); ok {
		rerr = fr.RecordFailure(rctx, at, err.Error())
	} else if rec, ok := p.(ErrorRecorder); ok {
		rerr = rec.RecordError(rctx, err.Error())
	}
	if rerr != nil && ctx.Err() == nil {
		log.Warn("projection could not record its error", "error", rerr)
	}
}

func (r *Runner) prefix() string {
	if r.StreamPrefix == "" {
		return room.StreamPrefix
	}
	return r.StreamPrefix
}

func (r *Runner) start(name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running {
		return errRunning
	}
	r.running = true
	r.failure = nil
	r.st.Name, r.st.State, r.st.Events = name, StateRunning, 0
	r.notifyLocked()
	return nil
}

func (r *Runner) finish(failure error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.running = false
	r.failure = failure
	if failure != nil {
		r.st.State = StateFailed
		r.st.LastError, r.st.LastErrorAt = failure.Error(), time.Now()
	} else {
		r.st.State = StateIdle
	}
	r.notifyLocked()
}

func (r *Runner) setCheckpoint(cp domain.Position) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.st.Checkpoint, r.known = cp, true
	r.notifyLocked()
}

// unseen drops the events at or before the checkpoint: delivery is at
// least once.
func (r *Runner) unseen(batch []domain.RecordedEvent) []domain.RecordedEvent {
	r.mu.Lock()
	cp := r.st.Checkpoint
	r.mu.Unlock()
	for i, ev := range batch {
		if cp.Less(ev.Position) {
			return batch[i:]
		}
	}
	return nil
}

func (r *Runner) applied(batch []domain.RecordedEvent) {
	last := batch[len(batch)-1]
	r.mu.Lock()
	defer r.mu.Unlock()
	r.st.State = StateRunning
	r.st.Checkpoint = last.Position
	r.st.Events += uint64(len(batch))
	r.st.LastEventAt = last.RecordedAt
	r.notifyLocked()
}

// notifyLocked wakes WaitFor callers; r.mu is held.
func (r *Runner) notifyLocked() {
	if r.changed != nil {
		close(r.changed)
	}
	r.changed = make(chan struct{})
}

// snapshot returns the status, whether its checkpoint is known, the
// failure that stopped the runner, and a channel closed at the next change.
func (r *Runner) snapshot() (Status, bool, error, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.changed == nil {
		r.changed = make(chan struct{})
	}
	st := r.st
	if st.State == "" {
		st.State = StateIdle
	}
	return st, r.known, r.failure, r.changed
}

// Progress returns the runner's progress as it knows it, reading nothing:
// Head, CaughtUp and Lag are left zero. It is what a frequent check (a
// readiness probe) asks; Status reads the log.
func (r *Runner) Progress() Status {
	st, _, _, _ := r.snapshot()
	if st.Name == "" {
		st.Name = r.Projection.Name()
	}
	return st
}

// Status returns the runner's progress, with the log's head read now.
// Before Run has started it reads the checkpoint from the projection.
func (r *Runner) Status(ctx context.Context) (Status, error) {
	head, err := r.Store.HeadPosition(ctx)
	if err != nil {
		return r.Progress(), fmt.Errorf("projection %s status: %w", r.Projection.Name(), err)
	}
	return r.StatusAt(ctx, head)
}

// StatusAt is Status with the log's head given: several runners' statuses
// can share one read of it, or take one that costs no read (a Feed's Head).
func (r *Runner) StatusAt(ctx context.Context, head domain.Position) (Status, error) {
	st, known, _, _ := r.snapshot()
	if st.Name == "" {
		st.Name = r.Projection.Name()
	}
	if !known {
		cp, err := r.Projection.Checkpoint(ctx)
		if err != nil {
			return st, fmt.Errorf("projection %s status: %w", st.Name, err)
		}
		st.Checkpoint = cp
	}
	st.Head = head
	pending, err := r.pending(ctx, st.Checkpoint, head)
	if err != nil {
		return st, fmt.Errorf("projection %s status: %w", st.Name, err)
	}
	st.CaughtUp = pending == nil
	if pending != nil {
		st.Lag = max(time.Since(pending.RecordedAt), 0)
	}
	return st, nil
}

// pending returns the first event the projection handles after cp and at
// or before upTo, or nil when there is none.
func (r *Runner) pending(ctx context.Context, cp, upTo domain.Position) (*domain.RecordedEvent, error) {
	if !cp.Less(upTo) {
		return nil, nil
	}
	evs, err := r.Store.ReadAll(ctx, domain.ReadAllOptions{After: cp, Limit: 1, StreamPrefix: r.prefix()})
	if err != nil {
		return nil, err
	}
	if len(evs) == 0 || upTo.Less(evs[0].Position) {
		return nil, nil
	}
	return &evs[0], nil
}

// WaitFor returns when the projection has applied every event it handles
// at or before pos, such as the position of an append or the log's head;
// the position of an event of another stream counts as reached once the
// projection has passed it. It returns ctx's error when ctx ends first,
// and an error when the runner stops on a failure. It does not start the
// runner.
func (r *Runner) WaitFor(ctx context.Context, pos domain.Position) error {
	poll := time.NewTicker(waitPoll)
	defer poll.Stop()
	look := true
	for {
		st, known, failure, changed := r.snapshot()
		if failure != nil {
			return fmt.Errorf("projection %s stopped before reaching %s: %w", st.Name, pos, failure)
		}
		if known && !st.Checkpoint.Less(pos) {
			return nil
		}
		// The checkpoint is behind pos. That is final only if an event the
		// projection handles lies between them. A checkpoint that moves
		// but falls short is only looked at on the next poll: while
		// catching up, most batches land short of pos.
		if known && look {
			passed, err := r.passed(ctx, st.Checkpoint, pos)
			if err != nil {
				return fmt.Errorf("projection %s: wait for %s: %w", st.Name, pos, err)
			}
			if passed {
				return nil
			}
			look = false
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		case <-poll.C:
			look = true
		}
	}
}

// passed reports whether no event the projection handles lies after cp
// and at or before pos, pos being readable already.
func (r *Runner) passed(ctx context.Context, cp, pos domain.Position) (bool, error) {
	head, err := r.Store.HeadPosition(ctx)
	if err != nil {
		return false, err
	}
	if head.Less(pos) {
		return false, nil // events before pos may still be committing
	}
	ev, err := r.pending(ctx, cp, pos)
	return ev == nil, err
}

// backoff doubles a wait from min to max with each failure.
type backoff struct {
	min, max time.Duration
	failures int
	cur      time.Duration
}

func (b *backoff) next() time.Duration {
	lo, hi := b.min, b.max
	if lo <= 0 {
		lo = DefaultMinBackoff
	}
	if hi <= 0 {
		hi = DefaultMaxBackoff
	}
	hi = max(hi, lo)
	if b.cur == 0 {
		b.cur = lo
	} else {
		b.cur = min(2*b.cur, hi)
	}
	b.failures++
	return b.cur
}

func (b *backoff) reset() { b.failures, b.cur = 0, 0 }
