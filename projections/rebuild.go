package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
)

// The rebuild protocol.
//
// A read model that can be rebuilt keeps up to three copies: the live one,
// which its Runner applies the log to and readers read; a shadow, which a
// rebuild fills from position zero with the same Apply; and the old one,
// the live copy a swap replaced, kept until it is dropped. Rebuild runs
// the protocol; a Rebuildable does each step over its own storage:
//
//  1. Drop the old copy of an earlier swap when asked (DropOld), then
//     refuse to go on while there is one (ErrOldCopyExists): a second
//     swap would have nowhere to keep the live copy.
//  2. Prepare the shadow: resume the one an interrupted rebuild left
//     (unless it belongs to another log), or start an empty one; a
//     rebuild's lock keeps a second rebuild of the same shadow out
//     (ErrRebuildRunning).
//  3. Catch the shadow up with the log (CatchUp, the Runner's Apply, in
//     large batches), again and again until a pass applies fewer than
//     RebuildOptions.CaughtUpEnough events: the rest is applied while the
//     live copy is held still, which should be short.
//  4. Swap: the Rebuildable holds the live copy still (its Runner's next
//     Apply waits), reads its checkpoint L, has the protocol bring the
//     shadow to exactly L, and then, atomically, makes the shadow live and
//     keeps the live copy as the old one. The live Runner goes on from
//     the shadow's checkpoint S >= L: it has every event up to L, and
//     nothing after L was applied live meanwhile. A lock not granted in
//     time (ErrSwapContended) rolls everything back; the swap is tried
//     again, up to RebuildOptions.Attempts times.
//  5. Drop the old copy when asked.
//
// A dry run fills a scratch shadow instead, up to the live checkpoint,
// has the Rebuildable compare it with the live copy while holding the
// live copy still at one position (Compare), reports the differences and
// drops the scratch shadow whatever happens: it changes nothing live.
//
// When the live copy's checkpoint belongs to another log (PARLEY_EVENT_STORE
// changed: see LogBinder), its position means nothing here and no Runner
// applies to it: the swap then replaces it without catching up to it, and
// a dry run refuses to compare (a *WrongLogError).

// Errors of the rebuild protocol. The Rebuildables return them (wrapped
// with what they know), so that callers tell the cases apart whatever the
// storage.
var (
	// ErrOldCopyExists: the old copy of an earlier swap is still kept.
	ErrOldCopyExists = errors.New("the old copy of an earlier rebuild still exists")
	// ErrRebuildRunning: another process holds the rebuild's lock.
	ErrRebuildRunning = errors.New("another rebuild of this projection is running")
	// ErrSwapContended: the live copy could not be held still in time (a
	// lock was not granted, or the live copy moved); nothing changed, and
	// trying again may work.
	ErrSwapContended = errors.New("the live copy could not be held still in time")
	// ErrShadowBehind: the shadow had not reached the live copy's
	// checkpoint when the swap would have made it live; nothing changed.
	ErrShadowBehind = errors.New("the shadow is behind the live copy")
)

// Rebuildable is a read model that a Rebuild can rebuild: its live copy,
// one shadow (a real rebuild's, or a dry run's scratch one, as the
// Rebuildable was made) and the old copy of the last swap.
type Rebuildable interface {
	// Live is the projection applying to the live copy, whichever copy
	// is live; its Name is the read model's.
	Live() Projection
	// Prepare takes the rebuild's lock (ErrRebuildRunning when another
	// process holds it) until release, and returns the shadow: the one an
	// interrupted rebuild left when it still fits the live copy's shape
	// (resumed; never for a scratch shadow), else an empty one.
	Prepare(ctx context.Context) (shadow Projection, resumed bool, release func(), err error)
	// DropShadow drops the shadow, and reports whether there was one.
	DropShadow(ctx context.Context) (bool, error)
	// Swap holds the live copy still, calls catchUp with its checkpoint,
	// and then makes the shadow live and keeps the live copy as the old
	// one, atomically, provided the shadow has reached the position
	// catchUp returned (else ErrShadowBehind) and there is no old copy
	// (else ErrOldCopyExists). ErrSwapContended means nothing changed and
	// trying again may work.
	Swap(ctx context.Context, catchUp CatchUpFunc) (SwapResult, error)
	// Compare holds the live copy still, calls catchUp with its
	// checkpoint, and compares the shadow with the live copy.
	Compare(ctx context.Context, catchUp CatchUpFunc) (Diff, error)
	// OldCopy says where the old copy of the last swap is kept ("tables
	// rooms_old and chat_logs_old"), or "" when there is none.
	OldCopy(ctx context.Context) (string, error)
	// DropOld drops the old copy, and reports whether there was one.
	DropOld(ctx context.Context) (bool, error)
}

// Checkpoint is a copy's checkpoint: a position, and the log it belongs
// to ("" when it records none).
type Checkpoint struct {
	Position domain.Position
	Log      string
}

// CatchUpFunc brings the shadow up to the live copy's checkpoint live,
// which the Rebuildable holds still, and returns the position the shadow
// must have reached for it to hold everything the live copy holds: live's
// position, or domain.Start when live belongs to another log.
type CatchUpFunc func(ctx context.Context, live Checkpoint) (domain.Position, error)

// SwapResult is what a swap did.
type SwapResult struct {
	// Live is where the live copy was (the old copy's checkpoint now),
	// Shadow where the shadow was (the live one's now).
	Live, Shadow domain.Position
}

// Diff is how a shadow differs from the live copy, both at the live
// checkpoint.
type Diff struct {
	// Live and Shadow are the checkpoints compared.
	Live, Shadow domain.Position
	// Parts compare one kind of entry each ("rooms", "messages").
	Parts []DiffPart
}

// DiffPart compares one kind of entry of the two copies, by key.
type DiffPart struct {
	// What names the kind of entry.
	What string
	// Live and Shadow count the entries of each copy.
	Live, Shadow int64
	// Differing counts keys in both whose entries differ; Missing keys
	// only the live copy has (the rebuild lacks them); Extra keys only
	// the shadow has.
	Differing, Missing, Extra int64
	// Examples names some keys with a difference.
	Examples []string
}

// Equal reports whether the shadow equals the live copy at the same
// position.
func (d Diff) Equal() bool {
	for _, p := range d.Parts {
		if p.Differing+p.Missing+p.Extra > 0 {
			return false
		}
	}
	return d.Live == d.Shadow
}

// Defaults of RebuildOptions.
const (
	DefaultRebuildBatch   = 10000
	DefaultSwapAttempts   = 5
	DefaultCaughtUpEnough = 1000
)

// RebuildSource is what a rebuild needs of the event store. A store that
// also counts events (EventCounter) gives the progress a total.
type RebuildSource interface {
	Reader
	HeadPosition(ctx context.Context) (domain.Position, error)
}

// EventCounter is implemented by stores that count the events between two
// positions cheaply.
type EventCounter interface {
	CountEvents(ctx context.Context, after, upTo domain.Position, prefix string) (int64, error)
}

// RebuildOptions configure a Rebuild. Store and Target are required.
type RebuildOptions struct {
	Store  RebuildSource
	Target Rebuildable
	// DryRun compares the shadow with the live copy instead of swapping;
	// Target must have been made with a scratch shadow.
	DryRun bool
	// DropOld drops the old copy of an earlier swap first, and the one
	// this swap keeps at the end.
	DropOld bool
	// Batch is the most events read and applied at once. Default
	// DefaultRebuildBatch.
	Batch int
	// Attempts bounds the tries of a contended swap. Default
	// DefaultSwapAttempts.
	Attempts int
	// CaughtUpEnough ends the catch-up passes: once a pass applies fewer
	// events than this, the rebuild swaps. Default DefaultCaughtUpEnough.
	CaughtUpEnough int64
	// Logger receives the steps and retries; nil discards them.
	Logger *slog.Logger
	// Progress, when set, is called after each batch of a catch-up pass
	// and once at its end, from the goroutine that called Rebuild.
	Progress func(RebuildProgress)
}

// RebuildProgress is how far a catch-up pass of a rebuild has come.
type RebuildProgress struct {
	// Pass numbers the passes from 1.
	Pass int
	// Applied counts the events applied in this pass; Total is how many
	// it has to apply, or -1 when the store cannot count them.
	Applied, Total int64
	// Checkpoint is the shadow's position.
	Checkpoint domain.Position
	// Done is set on the pass's last call.
	Done bool
}

// RebuildResult is what a Rebuild did.
type RebuildResult struct {
	// Name is the read model's.
	Name string
	// Resumed reports that it went on with an interrupted rebuild's
	// shadow, from Resumed.
	Resumed bool
	From    domain.Position
	// Applied counts the events applied to the shadow, CatchUp how long
	// that took, Swap how long the swap took.
	Applied       int64
	CatchUp, Swap time.Duration
	// Swapped is what the swap did, Attempts how many tries it took, Old
	// where the old copy is kept (empty once DropOld dropped it).
	Swapped  SwapResult
	Attempts int
	Old      string
	// DroppedOld reports that an old copy was dropped.
	DroppedOld bool
	// Diff is a dry run's comparison.
	Diff *Diff
	// Shadow is the shadow's checkpoint when the rebuild stopped early
	// (an interrupted rebuild resumes from it).
	Shadow domain.Position
}

// Rebuild runs the rebuild protocol (see above) for opts.Target. Its
// errors wrap the protocol's (ErrOldCopyExists, ErrRebuildRunning, ...),
// an *EventError when an event cannot be applied, and ctx's error when
// it ends first; the shadow stays for the next run to resume, but for a
// dry run's.
func Rebuild(ctx context.Context, opts RebuildOptions) (RebuildResult, error) {
	if opts.Batch <= 0 {
		opts.Batch = DefaultRebuildBatch
	}
	if opts.Attempts <= 0 {
		opts.Attempts = DefaultSwapAttempts
	}
	if opts.CaughtUpEnough <= 0 {
		opts.CaughtUpEnough = DefaultCaughtUpEnough
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	name := opts.Target.Live().Name()
	rb := &rebuild{opts: opts, log: opts.Logger.With("projection", name), res: RebuildResult{Name: name}}
	err := rb.run(ctx)
	if err != nil {
		if rb.shadow != nil {
			rb.res.Shadow, _ = rb.shadow.Checkpoint(context.WithoutCancel(ctx))
		}
		err = fmt.Errorf("rebuild %s: %w", name, err)
	}
	return rb.res, err
}

// rebuild is one run of the protocol.
type rebuild struct {
	opts    RebuildOptions
	log     *slog.Logger
	res     RebuildResult
	shadow  Projection
	logID   string // the store's log
	pass    int
	started time.Time
}

func (r *rebuild) run(ctx context.Context) error {
	t := r.opts.Target
	var err error
	if r.logID, err = LogOf(ctx, r.opts.Store); err != nil {
		return err
	}
	if !r.opts.DryRun {
		if err := r.dropOld(ctx); err != nil {
			return err
		}
		old, err := t.OldCopy(ctx)
		if err != nil {
			return err
		}
		if old != "" {
			return fmt.Errorf("%w (%s)", ErrOldCopyExists, old)
		}
	}
	shadow, resumed, release, err := t.Prepare(ctx)
	if err != nil {
		return err
	}
	if resumed {
		// An interrupted rebuild's shadow of another log is no start.
		if err := BindLog(ctx, shadow, r.logID); errors.Is(err, ErrWrongLog) {
			r.log.Warn("the interrupted rebuild's shadow belongs to another log; starting afresh", "error", err)
			_, err := t.DropShadow(ctx)
			release()
			if err != nil {
				return err
			}
			if shadow, resumed, release, err = t.Prepare(ctx); err != nil {
				return err
			}
		}
	}
	defer release()
	r.shadow = shadow
	if r.res.From, err = shadow.Checkpoint(ctx); err != nil {
		return err
	}
	r.res.Resumed = resumed
	if resumed {
		r.log.Info("resuming an interrupted rebuild", "shadow", shadow.Name(), "checkpoint", r.res.From.String())
	} else {
		r.log.Info("rebuilding from position zero", "shadow", shadow.Name())
	}
	if r.opts.DryRun {
		return r.dryRun(ctx)
	}
	r.started = time.Now()
	for {
		head, err := r.opts.Store.HeadPosition(ctx)
		if err != nil {
			return fmt.Errorf("read the log's head: %w", err)
		}
		applied, err := r.catchUp(ctx, head, true)
		if err != nil {
			return err
		}
		if applied < r.opts.CaughtUpEnough {
			break
		}
	}
	r.res.CatchUp = time.Since(r.started)
	r.log.Info("caught up with the log; swapping")
	if err := r.swap(ctx); err != nil {
		return err
	}
	if r.opts.DropOld {
		return r.dropOld(ctx)
	}
	r.res.Old, err = t.OldCopy(ctx)
	return err
}

// dropOld drops the old copy when asked to.
func (r *rebuild) dropOld(ctx context.Context) error {
	if !r.opts.DropOld {
		return nil
	}
	dropped, err := r.opts.Target.DropOld(ctx)
	if err != nil {
		return err
	}
	if dropped {
		r.res.DroppedOld = true
		r.log.Info("dropped the old copy")
	}
	return nil
}

// swap tries the swap until it is not contended, or the attempts are used.
func (r *rebuild) swap(ctx context.Context) error {
	began := time.Now()
	for r.res.Attempts = 1; ; r.res.Attempts++ {
		res, err := r.opts.Target.Swap(ctx, r.toLive)
		if err == nil {
			r.res.Swapped, r.res.Swap = res, time.Since(began)
			return nil
		}
		if !errors.Is(err, ErrSwapContended) || r.res.Attempts >= r.opts.Attempts || ctx.Err() != nil {
			return fmt.Errorf("swap (attempt %d of %d): %w", r.res.Attempts, r.opts.Attempts, err)
		}
		wait := time.Duration(r.res.Attempts) * 200 * time.Millisecond
		r.log.Warn("swap contended; retrying", "error", err, "attempt", r.res.Attempts, "retry_in", wait)
		if !sleep(ctx, wait) {
			return ctx.Err()
		}
	}
}

// toLive is the CatchUpFunc of the swap: the shadow up to the live
// checkpoint, unless that belongs to another log.
func (r *rebuild) toLive(ctx context.Context, live Checkpoint) (domain.Position, error) {
	if live.Log != "" && r.logID != "" && live.Log != r.logID {
		r.log.Warn("the live copy's checkpoint belongs to another log; replacing it", "live_log", live.Log, "log", r.logID)
		return domain.Start, nil
	}
	if _, err := r.catchUp(ctx, live.Position, false); err != nil {
		return domain.Start, err
	}
	return live.Position, nil
}

// dryRun builds the shadow up to the live checkpoint, compares, and drops
// the shadow whatever happens.
func (r *rebuild) dryRun(ctx context.Context) error {
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if _, err := r.opts.Target.DropShadow(dctx); err != nil {
			r.log.Error("dry run: could not drop the scratch shadow; the next dry run drops it", "error", err)
		}
	}()
	cp, err := r.opts.Target.Live().Checkpoint(ctx)
	if err != nil {
		return err
	}
	r.started = time.Now()
	if _, err := r.catchUp(ctx, cp, true); err != nil {
		return err
	}
	r.res.CatchUp = time.Since(r.started)
	diff, err := r.opts.Target.Compare(ctx, func(ctx context.Context, live Checkpoint) (domain.Position, error) {
		if live.Log != "" && r.logID != "" && live.Log != r.logID {
			return domain.Start, &WrongLogError{Projection: r.res.Name, Bound: live.Log, Log: r.logID}
		}
		return r.toLive(ctx, live)
	})
	if err != nil {
		return fmt.Errorf("dry run: %w", err)
	}
	r.res.Diff = &diff
	return nil
}

// catchUp applies to the shadow every event up to upTo, reporting
// progress when report is set, and returns how many it applied.
func (r *rebuild) catchUp(ctx context.Context, upTo domain.Position, report bool) (int64, error) {
	opts := CatchUpOptions{Store: r.opts.Store, Projection: r.shadow, Batch: r.opts.Batch, Logger: r.opts.Logger}
	var p RebuildProgress
	if report && r.opts.Progress != nil {
		r.pass++
		cp, err := r.shadow.Checkpoint(ctx)
		if err != nil {
			return 0, err
		}
		p = RebuildProgress{Pass: r.pass, Total: -1, Checkpoint: cp}
		if c, ok := r.opts.Store.(EventCounter); ok {
			if p.Total, err = c.CountEvents(ctx, cp, upTo, room.StreamPrefix); err != nil {
				return 0, err
			}
		}
		opts.Progress = func(cp CatchUpProgress) {
			p.Applied, p.Checkpoint = cp.Applied, cp.Checkpoint
			r.opts.Progress(p)
		}
	}
	done, err := CatchUp(ctx, opts, upTo)
	r.res.Applied += done.Applied
	if opts.Progress != nil {
		p.Applied, p.Checkpoint, p.Done = done.Applied, done.Checkpoint, true
		r.opts.Progress(p)
	}
	return done.Applied, err
}
