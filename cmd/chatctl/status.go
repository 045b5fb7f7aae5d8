package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/cmd/internal/cli"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/projections"
)

const projectionsStatusUsage = `usage: chatctl projections status

Lists each projection's checkpoint (and those of a rebuild's shadow and old
copies), the log's head, how many events of the rooms lie between them
(exactly on Postgres; on KurrentDB only whether there are any), and why a
projection stopped. Exit status 1 when one is in error, or its checkpoint
belongs to another log.

` + projectionsEnvironment

// projectionRow is one line of `projections status`.
type projectionRow struct {
	postgres.Checkpoint
	found  bool  // it has a checkpoint row
	behind int64 // events of its streams after its checkpoint, up to the head; -1 when it does not apply, -2 some
	role   string
}

func runProjectionsStatus(ctx context.Context, e runEnv, args []string) error {
	fs, dbURL := projectionFlags("status")
	pos, err := cli.ParseInterleaved(fs, args, "chatctl projections status", projectionsStatusUsage, e.stdout)
	if err != nil {
		return helpOK(err)
	}
	if len(pos) > 0 {
		return cli.Usagef("projections status takes no arguments (got %q)", pos)
	}
	pe, err := openProjectionEnv(ctx, e, databaseOr(*dbURL, e.getenv), 0)
	if err != nil {
		return err
	}
	defer pe.Close()
	log, err := projections.LogOf(ctx, pe.store)
	if err != nil {
		return err
	}
	rows, head, err := projectionStatus(ctx, pe)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "event store: %s, log %s\n\n", pe.kind, log)
	return printProjectionStatus(e.stdout, rows, head, log)
}

// projectionStatus reads every projection's checkpoint, with the log's
// head and how far behind it each is.
func projectionStatus(ctx context.Context, pe *projectionEnv) ([]projectionRow, domain.Position, error) {
	head, err := pe.store.HeadPosition(ctx)
	if err != nil {
		return nil, head, err
	}
	cps, err := postgres.ListCheckpoints(ctx, pe.pool)
	if err != nil {
		return nil, head, err
	}
	byName := map[string]postgres.Checkpoint{}
	for _, c := range cps {
		byName[c.Name] = c
	}
	var rows []projectionRow
	// The live projections stored in Postgres come first, with or without
	// a checkpoint yet, then the others (shadows of rebuilds, old copies).
	for _, name := range []string{postgres.DefaultChatLogName} {
		c, ok := byName[name]
		c.Name = name
		rows = append(rows, projectionRow{Checkpoint: c, found: ok, role: "live"})
		delete(byName, name)
	}
	for _, c := range cps {
		if _, ok := byName[c.Name]; !ok {
			continue
		}
		role := "other"
		switch {
		case strings.HasSuffix(c.Name, "_old"):
			role = "old"
		case strings.HasSuffix(c.Name, "_next"), strings.HasSuffix(c.Name, "_dryrun"):
			role = "shadow"
		}
		rows = append(rows, projectionRow{Checkpoint: c, found: true, role: role})
	}
	mem, err := memoryStatus(ctx, pe)
	if err != nil {
		return nil, head, err
	}
	rows = append(rows, mem...)
	for i := range rows {
		rows[i].behind = -1
		if rows[i].role == "old" {
			continue
		}
		if rows[i].behind, err = pe.behind(ctx, rows[i].Position, head); err != nil {
			return nil, head, err
		}
	}
	return rows, head, nil
}

// printProjectionStatus writes the status table, then the errors in full;
// it returns an error when a projection has one, or a checkpoint of
// another log than log.
func printProjectionStatus(w io.Writer, rows []projectionRow, head domain.Position, log string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROJECTION\tCHECKPOINT\tHEAD\tBEHIND\tUPDATED\tSTATE")
	var failing []string
	for _, r := range rows {
		updated := "-"
		if r.found && !r.UpdatedAt.IsZero() { // Redis keeps no time
			updated = r.UpdatedAt.Format(time.RFC3339)
		}
		var state string
		switch {
		case r.LogID != "" && log != "" && r.LogID != log && r.role != "old":
			state = "OTHER LOG (rebuild it)"
			failing = append(failing, fmt.Sprintf("%s: its checkpoint belongs to the log %s, not to this one (%s): rebuild it against this log (chatctl projections rebuild %s)",
				r.Name, r.LogID, log, projectionOf(r.Name)))
		case r.Stopped:
			state = "STOPPED at position " + r.StoppedAt.String()
			failing = append(failing, fmt.Sprintf("%s: stopped at position %s: %s", r.Name, r.StoppedAt, r.LastError))
		case r.LastError != "" && r.LastErrorAt.IsZero():
			state = "ERROR (retrying)"
			failing = append(failing, fmt.Sprintf("%s: error: %s", r.Name, r.LastError))
		case r.LastError != "":
			state = "ERROR (retrying)"
			failing = append(failing, fmt.Sprintf("%s: error since %s: %s", r.Name, r.LastErrorAt.Format(time.RFC3339), r.LastError))
		case r.role == "old":
			state = "old copy kept by a rebuild (`chatctl projections drop-old` drops it)"
		case r.role == "shadow":
			state = "rebuild in progress or interrupted (rerun it to resume)"
		case !r.found:
			state = "never run"
		case r.behind == 0:
			state = "caught up"
		default:
			state = "behind"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Position, head, behindText(r.behind), updated, state)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(failing) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	for _, f := range failing {
		fmt.Fprintln(w, f)
	}
	return &exitError{Code: 1, Err: fmt.Errorf("%d projection(s) in error", len(failing))}
}

// projectionOf is the projection a status row's copy belongs to.
func projectionOf(row string) string {
	if strings.HasPrefix(row, "memory") {
		return "memory"
	}
	return "chatlog"
}
