package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
	"github.com/parleychat/parley/projections"
)

// rebuildTarget is one projection's side of a rebuild; the rest (catching
// up, progress, interruption, the order of the steps) is the same for
// every projection and lives in rebuild. A projection that keeps its read
// model elsewhere (the Redis memory) plugs in by implementing it.
type rebuildTarget interface {
	// Name is the live projection's name.
	Name() string
	// Prepare creates the shadow storage, or keeps the one an interrupted
	// rebuild left (resumed), and holds the target's rebuild lock until
	// release. A dry-run target always starts afresh. A real one fails
	// when the old copy of an earlier swap is still there.
	Prepare(ctx context.Context) (resumed bool, release func(), err error)
	// Projection writes the shadow: the live projection's code over other
	// storage.
	Projection() projections.Projection
	// LiveCheckpoint is the live projection's checkpoint now.
	LiveCheckpoint(ctx context.Context) (domain.Position, error)
	// Compare holds the live projection still, has catchUp bring the
	// shadow to exactly the live checkpoint, and reports the differences.
	Compare(ctx context.Context, catchUp catchUpFunc) (rebuildDiff, error)
	// Swap makes the shadow live atomically, keeping the old copy;
	// catchUp brings the shadow to the live checkpoint while the live
	// projection is held still.
	Swap(ctx context.Context, catchUp catchUpFunc) (swapped, error)
	// DropOld drops the old copy of the last swap, if any.
	DropOld(ctx context.Context) (bool, error)
	// Discard drops the shadow (after a dry run).
	Discard(ctx context.Context) error
}

// catchUpFunc applies to the shadow every event up to upTo, and none after.
type catchUpFunc func(ctx context.Context, upTo domain.Position) error

// rebuildDiff is what a dry run found.
type rebuildDiff struct {
	Live, Rebuilt domain.Position
	Parts         []diffPart
}

// diffPart compares one kind of row, by key.
type diffPart struct {
	What                      string // "rooms", "messages"
	Live, Rebuilt             int64
	Differing, Missing, Extra int64
	Examples                  string // some keys with a difference
}

func (d rebuildDiff) equal() bool {
	for _, p := range d.Parts {
		if p.Differing+p.Missing+p.Extra > 0 {
			return false
		}
	}
	return d.Live == d.Rebuilt
}

// swapped is what a swap did.
type swapped struct {
	Live, Rebuilt domain.Position // checkpoints: the old live one, the new live one
	Attempts      int
	Old           string // where the old copy is
}

// rebuildOptions are the rebuild's flags.
type rebuildOptions struct {
	dryRun, dropOld bool
	batch           int
	lockTimeout     time.Duration
}

// rebuildTarget returns the rebuild of projection name.
func (e *projectionEnv) rebuildTarget(name string, opts rebuildOptions) (rebuildTarget, error) {
	if name == "memory" {
		rb, err := e.memoryRebuild(opts)
		if err != nil {
			return nil, err
		}
		return &memoryTarget{rb: rb}, nil
	}
	cfg := postgres.ChatLogRebuildConfig{LockTimeout: opts.lockTimeout, Logger: e.log}
	if opts.dryRun {
		cfg.Shadow = postgres.ChatLogConfig{Name: "chatlog_dryrun", TableSuffix: "_dryrun"}
	}
	rb, err := postgres.NewChatLogRebuild(e.pool, cfg)
	if err != nil {
		return nil, err
	}
	live, err := postgres.NewChatLog(e.pool, postgres.ChatLogConfig{})
	if err != nil {
		return nil, err
	}
	return &chatlogTarget{rb: rb, live: live, dryRun: opts.dryRun}, nil
}

// chatlogTarget rebuilds the ChatLog in Postgres shadow tables.
type chatlogTarget struct {
	rb     *postgres.ChatLogRebuild
	live   *postgres.ChatLog
	dryRun bool
}

func (t *chatlogTarget) Name() string { return t.live.Name() }

func (t *chatlogTarget) Prepare(ctx context.Context) (bool, func(), error) {
	release, err := t.rb.Lock(ctx)
	if err != nil {
		return false, nil, err
	}
	resumed, err := t.prepare(ctx)
	if err != nil {
		release()
		return false, nil, err
	}
	return resumed, release, nil
}

func (t *chatlogTarget) prepare(ctx context.Context) (bool, error) {
	if t.dryRun {
		if _, err := t.rb.DropShadow(ctx); err != nil {
			return false, err
		}
		_, err := t.rb.Prepare(ctx)
		return false, err
	}
	old, err := t.rb.OldExists(ctx)
	if err != nil {
		return false, err
	}
	if old {
		return false, fmt.Errorf("%w, or pass --drop-old", postgres.ErrOldCopyExists)
	}
	return t.rb.Prepare(ctx)
}

func (t *chatlogTarget) Projection() projections.Projection { return t.rb.Shadow() }

func (t *chatlogTarget) LiveCheckpoint(ctx context.Context) (domain.Position, error) {
	return t.live.Checkpoint(ctx)
}

func (t *chatlogTarget) Compare(ctx context.Context, catchUp catchUpFunc) (rebuildDiff, error) {
	d, err := t.rb.Compare(ctx, catchUp)
	if err != nil {
		return rebuildDiff{}, err
	}
	part := func(what string, td postgres.TableDiff) diffPart {
		var ex []string
		for _, id := range td.Rooms {
			ex = append(ex, fmt.Sprint(id))
		}
		p := diffPart{What: what, Live: td.Live, Rebuilt: td.Shadow, Differing: td.Differing, Missing: td.Missing, Extra: td.Extra}
		if len(ex) > 0 {
			p.Examples = "rooms " + strings.Join(ex, ", ")
		}
		return p
	}
	return rebuildDiff{Live: d.Live, Rebuilt: d.Shadow, Parts: []diffPart{part("rooms", d.Rooms), part("messages", d.Messages)}}, nil
}

func (t *chatlogTarget) Swap(ctx context.Context, catchUp catchUpFunc) (swapped, error) {
	res, err := t.rb.Swap(ctx, catchUp)
	return swapped{Live: res.Live, Rebuilt: res.Shadow, Attempts: res.Attempts, Old: "tables rooms_old and chat_logs_old"}, err
}

func (t *chatlogTarget) DropOld(ctx context.Context) (bool, error) { return t.rb.DropOld(ctx) }

func (t *chatlogTarget) Discard(ctx context.Context) error {
	_, err := t.rb.DropShadow(ctx)
	return err
}

func runProjectionsRebuild(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs, dbURL := newFlagSet("rebuild", stderr, getenv)
	var opts rebuildOptions
	fs.BoolVar(&opts.dryRun, "dry-run", false, "rebuild into scratch tables, compare with the live read model, drop them; change nothing")
	fs.BoolVar(&opts.dropOld, "drop-old", false, "drop the old copy after the swap (and one left by an earlier rebuild)")
	fs.IntVar(&opts.batch, "batch", postgres.DefaultRebuildBatch, "most events read and applied in one transaction")
	fs.DurationVar(&opts.lockTimeout, "lock-timeout", postgres.DefaultSwapLockTimeout, "longest wait for a lock during the swap, per attempt")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return parseFailure("projections rebuild", err, stderr)
	}
	if len(pos) != 1 {
		fs.Usage()
		return &exitError{code: 2, err: fmt.Errorf("projections rebuild: name the projection to rebuild: chatlog, memory or all (got %q)", pos)}
	}
	if opts.batch <= 0 || opts.lockTimeout <= 0 {
		return &exitError{code: 2, err: errors.New("projections rebuild: --batch and --lock-timeout must be positive")}
	}
	if opts.dryRun && opts.dropOld {
		return &exitError{code: 2, err: errors.New("projections rebuild: --dry-run changes nothing, so it cannot --drop-old")}
	}
	names, err := selectProjections(pos[0])
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("projections rebuild: %w", err)}
	}
	env, closeEnv, err := openProjectionEnv(ctx, *dbURL, 0, stderr)
	if err != nil {
		return err
	}
	defer env.withRedis(getenv, closeEnv)()
	for _, name := range names {
		t, err := env.rebuildTarget(name, opts)
		if err != nil {
			return err
		}
		r := &rebuilder{env: env, target: t, opts: opts, out: stdout, progress: stderr}
		if err := r.run(ctx); err != nil {
			return err
		}
	}
	return nil
}

// rebuilder runs one target's rebuild.
type rebuilder struct {
	env      *projectionEnv
	target   rebuildTarget
	opts     rebuildOptions
	out      io.Writer // the report
	progress io.Writer // the progress bar
}

// caughtUpEnough is when the rebuild stops catching up and swaps: the
// last pass applied fewer events than this, so the catch-up under the
// live projection's lock is short.
const caughtUpEnough = 1000

func (r *rebuilder) run(ctx context.Context) error {
	name := r.target.Name()
	log := r.env.log.With("projection", name)
	if r.opts.dropOld && !r.opts.dryRun {
		dropped, err := r.target.DropOld(ctx)
		if err != nil {
			return err
		}
		if dropped {
			log.Info("dropped the old copy left by an earlier rebuild")
		}
	}
	resumed, release, err := r.target.Prepare(ctx)
	if err != nil {
		return fmt.Errorf("rebuild %s: %w", name, err)
	}
	defer release()
	shadow := r.target.Projection()
	cp, err := shadow.Checkpoint(ctx)
	if err != nil {
		return err
	}
	if resumed {
		log.Info("resuming an interrupted rebuild", "shadow", shadow.Name(), "checkpoint", cp.String())
	} else {
		log.Info("rebuilding from position zero", "shadow", shadow.Name())
	}

	if r.opts.dryRun {
		return r.dryRun(ctx, log)
	}
	// Catch up with the log, as often as it takes to get close to its head.
	for {
		head, err := r.env.store.HeadPosition(ctx)
		if err != nil {
			return err
		}
		applied, err := r.catchUp(ctx, head, true)
		if err != nil {
			return r.interrupted(ctx, err)
		}
		if applied < caughtUpEnough {
			break
		}
	}
	log.Info("caught up with the log; swapping")
	res, err := r.target.Swap(ctx, func(ctx context.Context, upTo domain.Position) error {
		_, err := r.catchUp(ctx, upTo, false)
		return err
	})
	if err != nil {
		return r.interrupted(ctx, err)
	}
	fmt.Fprintf(r.out, "%s: rebuilt and swapped in at position %s (the live projection was at %s; %d attempt(s))\n",
		name, res.Rebuilt, res.Live, res.Attempts)
	if !r.opts.dropOld {
		fmt.Fprintf(r.out, "%s: the old copy is kept in %s: `chatctl projections drop-old %s` drops it\n", name, res.Old, name)
		return nil
	}
	if _, err := r.target.DropOld(ctx); err != nil {
		return err
	}
	fmt.Fprintf(r.out, "%s: dropped the old copy\n", name)
	return nil
}

// interrupted explains an error that stopped a rebuild.
func (r *rebuilder) interrupted(ctx context.Context, err error) error {
	var ee *projections.EventError
	switch {
	case errors.As(err, &ee):
		return fmt.Errorf("rebuild %s: %w (`chatctl projections status` shows where it stopped)", r.target.Name(), err)
	case ctx.Err() == nil:
		return fmt.Errorf("rebuild %s: %w (the shadow is kept: rerun to resume)", r.target.Name(), err)
	}
	cp, cerr := r.target.Projection().Checkpoint(context.WithoutCancel(ctx))
	if cerr != nil {
		return fmt.Errorf("rebuild %s interrupted; rerun to resume", r.target.Name())
	}
	return fmt.Errorf("rebuild %s interrupted at position %s; rerun to resume", r.target.Name(), cp)
}

// dryRun builds the shadow up to the live checkpoint, compares, reports
// and drops the shadow, whatever happens.
func (r *rebuilder) dryRun(ctx context.Context, log *slog.Logger) error {
	name := r.target.Name()
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := r.target.Discard(dctx); err != nil {
			log.Error("dry run: could not drop the scratch shadow; `chatctl projections rebuild --dry-run` drops it next time", "error", err)
		}
	}()
	live, err := r.target.LiveCheckpoint(ctx)
	if err != nil {
		return err
	}
	if _, err := r.catchUp(ctx, live, true); err != nil {
		return fmt.Errorf("dry run of %s: %w", name, err)
	}
	diff, err := r.target.Compare(ctx, func(ctx context.Context, upTo domain.Position) error {
		_, err := r.catchUp(ctx, upTo, false)
		return err
	})
	if err != nil {
		return fmt.Errorf("dry run of %s: %w", name, err)
	}
	fmt.Fprintf(r.out, "%s: dry run at position %s (rebuilt up to %s)\n", name, diff.Live, diff.Rebuilt)
	tw := tabwriter.NewWriter(r.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROWS\tLIVE\tREBUILT\tDIFFERING\tMISSING\tEXTRA\tEXAMPLES")
	for _, p := range diff.Parts {
		ex := p.Examples
		if ex == "" {
			ex = "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\n", p.What, p.Live, p.Rebuilt, p.Differing, p.Missing, p.Extra, ex)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(r.out, "(missing: rows only the live read model has; extra: rows only the rebuild has)")
	if !diff.equal() {
		return &exitError{code: 1, err: fmt.Errorf("dry run: the rebuilt %s differs from the live one", name)}
	}
	fmt.Fprintf(r.out, "%s: the rebuild equals the live read model; nothing was changed\n", name)
	return nil
}

// catchUp applies to the shadow every event up to upTo, with a progress
// bar when bar is set, and returns how many it applied.
func (r *rebuilder) catchUp(ctx context.Context, upTo domain.Position, bar bool) (int64, error) {
	shadow := r.target.Projection()
	opts := projections.CatchUpOptions{Store: r.env.store, Projection: shadow, Batch: r.opts.batch, Logger: r.env.log}
	if bar {
		cp, err := shadow.Checkpoint(ctx)
		if err != nil {
			return 0, err
		}
		total, err := r.env.store.CountEvents(ctx, cp, upTo, room.StreamPrefix)
		if err != nil {
			return 0, err
		}
		if total == 0 {
			return 0, nil
		}
		p := newPositionProgress(r.progress, isTerminal(r.progress), "rebuild "+r.target.Name(), total, time.Now)
		opts.Progress = func(pr projections.CatchUpProgress) { p.update(pr.Applied, pr.Checkpoint) }
		defer func() { p.finish() }()
	}
	res, err := projections.CatchUp(ctx, opts, upTo)
	return res.Applied, err
}
