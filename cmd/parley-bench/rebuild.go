package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
	"github.com/parleychat/parley/domain/room/roomgen"
	"github.com/parleychat/parley/projections"
)

// rebuildEvents is the size of the log the rebuild benchmark replays.
const rebuildEvents = 1_000_000

// Targets of the rebuild benchmark.
const (
	rebuildMinRatio = 0.5    // of the raw read rate
	rebuildMinRate  = 50_000 // events/s
)

// benchRebuild measures the ChatLog's rebuild (chatctl projections
// rebuild: projections.Rebuild, catching up shadow tables, then the swap)
// over a
// generated log of a million events, against reading the same events
// from the store with a plain ReadAll loop, in the same run: rounds
// alternate baseline and rebuild.
func benchRebuild(ctx context.Context, cfg config, out io.Writer) error {
	pool, closePool, err := scratchPool(ctx, cfg.adminURL, 16)
	if err != nil {
		return err
	}
	defer closePool()
	store := postgres.NewStore(pool, postgres.StoreConfig{})
	defer store.Close()

	st, took, err := writeRebuildLog(ctx, store, os.Stderr)
	if err != nil {
		return err
	}
	var size int64
	if err := pool.QueryRow(ctx, `SELECT pg_total_relation_size('events')`).Scan(&size); err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE events`); err != nil {
		return err
	}
	head, err := waitReadable(ctx, store, pool)
	if err != nil {
		return err
	}

	fmt.Fprintf(out, "\n== ChatLog rebuild (chatctl projections rebuild chatlog) vs reading the same log\n")
	fmt.Fprintf(out, "   log: %d events in %d rooms, %d appends (written in %s), events table %d MiB\n",
		st.Events, st.Rooms, st.Appends, took.Round(time.Second), size>>20)
	fmt.Fprintf(out, "   mix: %.1f%% chunks, %.1f chunks per answer; %d questions: %d completed, %d failed, %d cancelled, %d open; %d rooms deleted\n",
		100*float64(st.Chunks)/float64(st.Events), float64(st.Chunks)/float64(st.Questions), st.Questions, st.Completed, st.Failed, st.Cancelled, st.Open, st.Deleted)
	fmt.Fprintf(out, "   batch %d events; median of %d rounds per side, rounds interleaved\n\n", projections.DefaultRebuildBatch, cfg.rounds)

	var raws, rebuilds, totals []float64
	var swaps []time.Duration
	for r := range cfg.rounds {
		n, d, err := readAllLoop(ctx, store, head)
		if err != nil {
			return fmt.Errorf("round %d baseline: %w", r, err)
		}
		raws = append(raws, float64(n)/d.Seconds())
		res, err := rebuildOnce(ctx, pool, store)
		if err != nil {
			return fmt.Errorf("round %d rebuild: %w", r, err)
		}
		if res.applied != int64(st.Events) {
			return fmt.Errorf("round %d: the rebuild applied %d events, want %d", r, res.applied, st.Events)
		}
		rebuilds = append(rebuilds, float64(res.applied)/res.catchUp.Seconds())
		totals = append(totals, float64(res.applied)/res.whole.Seconds())
		swaps = append(swaps, res.swap)
		fmt.Fprintf(os.Stderr, "round %d: read %.0f events/s, rebuild %.0f events/s (catch-up %s, swap %s)\n",
			r+1, raws[r], rebuilds[r], res.catchUp.Round(time.Millisecond), res.swap.Round(time.Millisecond))
	}
	raw, rebuild, total := median(raws), median(rebuilds), median(totals)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "measure\tevents/s\tratio to read\t")
	fmt.Fprintf(tw, "read: ReadAll loop, batches of %d (baseline)\t%.0f\t1.00\t\n", projections.DefaultRebuildBatch, raw)
	fmt.Fprintf(tw, "rebuild: catch-up into shadow tables\t%.0f\t%.2f\t\n", rebuild, rebuild/raw)
	fmt.Fprintf(tw, "rebuild whole: prepare, catch-up, swap, drop-old (median swap %s)\t%.0f\t%.2f\t\n", medianDuration(swaps).Round(time.Millisecond), total, total/raw)
	if err := tw.Flush(); err != nil {
		return err
	}
	verdict := "met"
	if rebuild < rebuildMinRatio*raw || rebuild < rebuildMinRate {
		verdict = "MISSED"
	}
	fmt.Fprintf(out, "\ntarget: rebuild >= %.1f x read and >= %d events/s: %s\n", rebuildMinRatio, rebuildMinRate, verdict)
	return nil
}

// writeRebuildLog appends the benchmark's log, a thousand rooms at a time
// (the rooms of a slice converse at once), reporting progress on w.
func writeRebuildLog(ctx context.Context, store *postgres.Store, w io.Writer) (roomgen.Stats, time.Duration, error) {
	start := time.Now()
	var total roomgen.Stats
	last := start
	for slice := uint64(0); total.Events < rebuildEvents; slice++ {
		rooms, st := roomgen.Generate(roomgen.Config{Rooms: 1000, FirstRoom: 1 + int64(slice)*1000, Seed: slice})
		if total.Events+st.Events > rebuildEvents { // trim the last slice
			rooms, st = roomgen.Generate(roomgen.Config{Events: rebuildEvents - total.Events, FirstRoom: 1 + int64(slice)*1000, Seed: slice})
		}
		if _, err := roomgen.Write(ctx, store, rooms, 8, 16, nil); err != nil {
			return total, 0, err
		}
		total.Rooms += st.Rooms
		total.Events += st.Events
		total.Appends += st.Appends
		total.Questions += st.Questions
		total.Chunks += st.Chunks
		total.Completed += st.Completed
		total.Failed += st.Failed
		total.Cancelled += st.Cancelled
		total.Open += st.Open
		total.Deleted += st.Deleted
		if time.Since(last) > 5*time.Second || total.Events >= rebuildEvents {
			last = time.Now()
			el := time.Since(start)
			rate := float64(total.Events) / el.Seconds()
			fmt.Fprintf(w, "writing the log: %d/%d events, %.0f events/s, ETA %s\n", total.Events, rebuildEvents, rate,
				(time.Duration(float64(rebuildEvents-total.Events)/rate) * time.Second).Round(time.Second))
		}
	}
	return total, time.Since(start), nil
}

// waitReadable waits until the whole log is readable (no transaction that
// may still append to this database's events table holds it back) and
// returns its head.
func waitReadable(ctx context.Context, store *postgres.Store, pool *pgxpool.Pool) (domain.Position, error) {
	var txid, seq int64
	if err := pool.QueryRow(ctx, `SELECT txid, seq FROM events ORDER BY txid DESC, seq DESC LIMIT 1`).Scan(&txid, &seq); err != nil {
		return domain.Position{}, err
	}
	last := domain.Position{Commit: uint64(txid), Prepare: uint64(seq)}
	for {
		head, err := store.HeadPosition(ctx)
		if err != nil || !head.Less(last) {
			return head, err
		}
		select {
		case <-ctx.Done():
			return head, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// readAllLoop reads the room events up to head, a batch at a time, and
// returns how many and how long it took.
func readAllLoop(ctx context.Context, store *postgres.Store, head domain.Position) (int64, time.Duration, error) {
	start := time.Now()
	var n int64
	if !domain.Start.Less(head) {
		return 0, time.Since(start), nil
	}
	for ev, err := range domain.AllEvents(ctx, store, domain.ReadAllOptions{Limit: projections.DefaultRebuildBatch, StreamPrefix: room.StreamPrefix}) {
		if err != nil {
			return n, 0, err
		}
		n++
		if !ev.Position.Less(head) {
			break
		}
	}
	return n, time.Since(start), nil
}

type rebuildTimes struct {
	applied              int64
	whole, catchUp, swap time.Duration
}

// rebuildOnce runs the rebuild chatctl runs (projections.Rebuild over the
// ChatLog, as `chatctl projections rebuild chatlog --drop-old`): fresh
// shadow tables, the catch-up, the swap, and dropping the old copy for
// the next round.
func rebuildOnce(ctx context.Context, pool *pgxpool.Pool, store *postgres.Store) (rebuildTimes, error) {
	rb, err := postgres.NewChatLogRebuild(pool, postgres.ChatLogRebuildConfig{})
	if err != nil {
		return rebuildTimes{}, err
	}
	if _, err := rb.DropShadow(ctx); err != nil {
		return rebuildTimes{}, err
	}
	start := time.Now()
	res, err := projections.Rebuild(ctx, projections.RebuildOptions{Store: store, Target: rb, DropOld: true})
	return rebuildTimes{applied: res.Applied, whole: time.Since(start), catchUp: res.CatchUp, swap: res.Swap}, err
}

func medianDuration(ds []time.Duration) time.Duration {
	fs := make([]float64, len(ds))
	for i, d := range ds {
		fs[i] = float64(d)
	}
	return time.Duration(median(fs))
}
