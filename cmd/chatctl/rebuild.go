package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/cmd/internal/cli"
	"github.com/parleychat/parley/projections"
)

// chatctl's side of the rebuild: flags and output. The protocol itself is
// projections.Rebuild; the read models' steps are postgres.ChatLogRebuild
// and redis.MemoryRebuild.

const projectionsRebuildUsage = `usage: chatctl projections rebuild chatlog|memory|all [--dry-run] [--drop-old] [--batch N] [--lock-timeout D]

Rebuilds a projection from position zero into a shadow copy with the live
projection's code, showing progress, catches up with the log, then swaps the
copies in one short step while chatd keeps serving. Ctrl-C stops it and a
rerun resumes. The old copy stays until drop-old (or --drop-old).

--dry-run rebuilds into a scratch copy instead, compares it with the live
read model at the live checkpoint, and changes nothing: exit status 1 when
they differ.

` + projectionsEnvironment

const projectionsDropOldUsage = `usage: chatctl projections drop-old [chatlog|memory|all]

Drops the old copy a rebuild kept, once the new one has proven good
(default: chatlog).

` + projectionsEnvironment

// rebuildOptions are the rebuild's flags.
type rebuildOptions struct {
	dryRun, dropOld bool
	batch           int
	lockTimeout     time.Duration
}

// rebuildable returns projection name's rebuild.
func (e *projectionEnv) rebuildable(name string, opts rebuildOptions) (projections.Rebuildable, error) {
	if name == "memory" {
		return e.memoryRebuild(opts.dryRun)
	}
	return postgres.NewChatLogRebuild(e.pool, postgres.ChatLogRebuildConfig{DryRun: opts.dryRun, LockTimeout: opts.lockTimeout, Keys: e.keys})
}

func runProjectionsRebuild(ctx context.Context, e runEnv, args []string) error {
	fs, dbURL := projectionFlags("rebuild")
	var opts rebuildOptions
	fs.BoolVar(&opts.dryRun, "dry-run", false, "rebuild into scratch tables, compare with the live read model, drop them; change nothing")
	fs.BoolVar(&opts.dropOld, "drop-old", false, "drop the old copy after the swap (and one left by an earlier rebuild)")
	fs.IntVar(&opts.batch, "batch", projections.DefaultRebuildBatch, "most events read and applied in one transaction")
	fs.DurationVar(&opts.lockTimeout, "lock-timeout", postgres.DefaultSwapLockTimeout, "longest wait for a lock during the swap, per attempt")
	pos, err := cli.ParseInterleaved(fs, args, "chatctl projections rebuild", projectionsRebuildUsage, e.stdout)
	if err != nil {
		return helpOK(err)
	}
	switch {
	case len(pos) != 1:
		return cli.Usagef("projections rebuild: name the projection to rebuild: chatlog, memory or all (got %q)", pos)
	case opts.batch <= 0 || opts.lockTimeout <= 0:
		return cli.Usagef("projections rebuild: --batch and --lock-timeout must be positive")
	case opts.dryRun && opts.dropOld:
		return cli.Usagef("projections rebuild: --dry-run changes nothing, so it cannot --drop-old")
	}
	names, err := selectProjections(pos[0])
	if err != nil {
		return cli.Usagef("projections rebuild: %w", err)
	}
	pe, err := openProjectionEnv(ctx, e, databaseOr(*dbURL, e.getenv), 0)
	if err != nil {
		return err
	}
	defer pe.Close()
	for _, name := range names {
		target, err := pe.rebuildable(name, opts)
		if err != nil {
			return err
		}
		res, err := projections.Rebuild(ctx, projections.RebuildOptions{
			Store: pe.store, Target: target, DryRun: opts.dryRun, DropOld: opts.dropOld,
			Batch: opts.batch, Logger: pe.log, Progress: rebuildProgress(e.stderr, name),
		})
		if err != nil {
			return explainRebuild(ctx, name, res, err)
		}
		if err := reportRebuild(e.stdout, name, res); err != nil {
			return err
		}
	}
	return nil
}

// rebuildProgress shows each catch-up pass of a rebuild of name on w.
func rebuildProgress(w io.Writer, name string) func(projections.RebuildProgress) {
	var (
		bar  *progress
		pass int
	)
	return func(p projections.RebuildProgress) {
		if bar == nil || p.Pass != pass {
			if p.Done && p.Applied == 0 {
				return // nothing to apply: no bar
			}
			bar, pass = newProgress(w, "rebuild "+name, "events", max(p.Total, 0)), p.Pass
		}
		bar.update(p.Applied, "at position "+p.Checkpoint.String())
		if p.Done {
			bar.finish()
			bar = nil
		}
	}
}

// explainRebuild says what to do about an error that stopped a rebuild.
func explainRebuild(ctx context.Context, name string, res projections.RebuildResult, err error) error {
	var ee *projections.EventError
	switch {
	case errors.Is(err, projections.ErrOldCopyExists):
		return fmt.Errorf("%w: drop it with `chatctl projections drop-old %s`, or pass --drop-old", err, name)
	case errors.Is(err, projections.ErrRebuildRunning):
		return err
	case errors.Is(err, projections.ErrWrongLog):
		return fmt.Errorf("%w; a dry run has nothing to compare: rebuild it without --dry-run", err)
	case errors.As(err, &ee):
		return fmt.Errorf("%w (`chatctl projections status` shows where it stopped)", err)
	case ctx.Err() != nil:
		return fmt.Errorf("rebuild %s interrupted at position %s; rerun to resume", name, res.Shadow)
	}
	return fmt.Errorf("%w (the shadow is kept: rerun to resume)", err)
}

// reportRebuild writes what a rebuild did; a dry run that found
// differences is exit status 1.
func reportRebuild(w io.Writer, name string, res projections.RebuildResult) error {
	if res.Diff == nil {
		fmt.Fprintf(w, "%s: rebuilt and swapped in at position %s (the live projection was at %s; %d attempt(s))\n",
			name, res.Swapped.Shadow, res.Swapped.Live, res.Attempts)
		if res.Old != "" {
			fmt.Fprintf(w, "%s: the old copy is kept in %s: `chatctl projections drop-old %s` drops it\n", name, res.Old, name)
		} else if res.DroppedOld {
			fmt.Fprintf(w, "%s: dropped the old copy\n", name)
		}
		return nil
	}
	diff := res.Diff
	fmt.Fprintf(w, "%s: dry run at position %s (rebuilt up to %s)\n", name, diff.Live, diff.Shadow)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROWS\tLIVE\tREBUILT\tDIFFERING\tMISSING\tEXTRA\tEXAMPLES")
	for _, p := range diff.Parts {
		ex := strings.Join(p.Examples, ", ")
		if ex == "" {
			ex = "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\n", p.What, p.Live, p.Shadow, p.Differing, p.Missing, p.Extra, ex)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "(missing: rows only the live read model has; extra: rows only the rebuild has)")
	if !diff.Equal() {
		return &exitError{Code: 1, Err: fmt.Errorf("dry run: the rebuilt %s differs from the live one", name)}
	}
	fmt.Fprintf(w, "%s: the rebuild equals the live read model; nothing was changed\n", name)
	return nil
}

func runProjectionsDropOld(ctx context.Context, e runEnv, args []string) error {
	fs, dbURL := projectionFlags("drop-old")
	pos, err := cli.ParseInterleaved(fs, args, "chatctl projections drop-old", projectionsDropOldUsage, e.stdout)
	if err != nil {
		return helpOK(err)
	}
	arg := "chatlog"
	switch len(pos) {
	case 0:
	case 1:
		arg = pos[0]
	default:
		return cli.Usagef("projections drop-old: name one projection, or all (got %q)", pos)
	}
	names, err := selectProjections(arg)
	if err != nil {
		return cli.Usagef("projections drop-old: %w", err)
	}
	pe, err := openProjectionEnv(ctx, e, databaseOr(*dbURL, e.getenv), 0)
	if err != nil {
		return err
	}
	defer pe.Close()
	for _, name := range names {
		t, err := pe.rebuildable(name, rebuildOptions{})
		if err != nil {
			return err
		}
		dropped, err := t.DropOld(ctx)
		if err != nil {
			return err
		}
		if dropped {
			fmt.Fprintf(e.stdout, "%s: dropped the old copy\n", name)
		} else {
			fmt.Fprintf(e.stdout, "%s: no old copy to drop\n", name)
		}
	}
	return nil
}
