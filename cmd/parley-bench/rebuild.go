package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/privacy"
	"github.com/parleychat/parley/domain/room"
	"github.com/parleychat/parley/domain/room/roomgen"
	"github.com/parleychat/parley/projections"
)

// Targets of the rebuild benchmark.
const (
	rebuildMinRatio = 0.5    // of the raw read rate
	rebuildMinRate  = 50_000 // events/s
)

// benchRebuild measures the ChatLog's rebuild (chatctl projections
// rebuild: projections.Rebuild, catching up shadow tables, then the swap)
// over a generated log of a million events, against reading the same
// events from the store with a plain ReadAll loop, in the same run: rounds
// alternate baseline and rebuild. It does so twice, over two scratch
// databases holding the same history: one in clear, and one written
// through privacy.Store as chatd writes it, its text sealed under the
// rooms' data keys (room_keys, under a KEK of the benchmark's own), which
// the rebuild opens and the ChatLog seals again, as chatctl runs it.
func benchRebuild(ctx context.Context, cfg config, out io.Writer) error {
	kek, err := benchKEK()
	if err != nil {
		return err
	}
	sides := []*rebuildLog{{name: "clear"}, {name: "sealed", keks: privacy.KEKs{kek}}}
	for _, s := range sides {
		defer s.close()
	}
	// The two logs are written at once: appends wait on commits more than
	// on the CPU, and the setup is not what is measured.
	g, gctx := errgroup.WithContext(ctx)
	for _, s := range sides {
		g.Go(func() error { return s.open(gctx, cfg.adminURL, cfg.events) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if err := sides[1].checkSealed(ctx); err != nil {
		return err
	}

	clear := sides[0].stats
	fmt.Fprintf(out, "\n== ChatLog rebuild (chatctl projections rebuild chatlog) vs reading the same log, in clear and sealed\n")
	fmt.Fprintf(out, "   log: %d events in %d rooms, %d appends; events table %d MiB in clear, %d MiB sealed (written at once in %s and %s)\n",
		clear.Events, clear.Rooms, clear.Appends, sides[0].size>>20, sides[1].size>>20,
		sides[0].took.Round(time.Second), sides[1].took.Round(time.Second))
	fmt.Fprintf(out, "   mix: %d chunk deltas (%.1f per answer); %d questions: %d completed, %d failed, %d cancelled, %d open; %d rooms deleted\n",
		clear.Chunks, float64(clear.Chunks)/float64(max(clear.Questions, 1)), clear.Questions, clear.Completed, clear.Failed, clear.Cancelled, clear.Open, clear.Deleted)
	fmt.Fprintf(out, "   sealed: written through privacy.Store (AES-256-GCM, one data key per room in room_keys); each read and rebuild opens\n")
	fmt.Fprintf(out, "   a keyring of its own, cold, as a chatctl run does (cache of %d keys); the rebuilt ChatLog seals its text again\n", privacy.DefaultCacheSize)
	fmt.Fprintf(out, "   batch %d events; median of %d rounds per measure, rounds interleaved\n\n", projections.DefaultRebuildBatch, cfg.rounds)

	type figures struct{ read, rebuild, whole []float64 }
	fig := make([]figures, len(sides))
	var swaps []time.Duration
	for r := range cfg.rounds {
		for i, s := range sides {
			read, res, err := s.round(ctx)
			if err != nil {
				return fmt.Errorf("round %d, the log %s: %w", r+1, s.name, err)
			}
			fig[i].read = append(fig[i].read, read)
			fig[i].rebuild = append(fig[i].rebuild, float64(res.applied)/res.catchUp.Seconds())
			fig[i].whole = append(fig[i].whole, float64(res.applied)/res.whole.Seconds())
			swaps = append(swaps, res.swap)
			fmt.Fprintf(os.Stderr, "round %d, %s: read %.0f events/s, rebuild %.0f events/s (catch-up %s, swap %s)\n",
				r+1, s.name, read, fig[i].rebuild[r], res.catchUp.Round(time.Millisecond), res.swap.Round(time.Millisecond))
		}
		if r == 0 {
			if err := sides[1].checkSealedChatLog(ctx); err != nil {
				return err
			}
		}
	}
	raw := median(fig[0].read)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "measure\tevents/s\tratio to read\t")
	fmt.Fprintf(tw, "read: ReadAll loop, batches of %d (baseline)\t%.0f\t1.00\t\n", projections.DefaultRebuildBatch, raw)
	fmt.Fprintf(tw, "rebuild: catch-up into shadow tables\t%.0f\t%.2f\t\n", median(fig[0].rebuild), median(fig[0].rebuild)/raw)
	fmt.Fprintf(tw, "rebuild whole: prepare, catch-up, swap, drop-old\t%.0f\t%.2f\t\n", median(fig[0].whole), median(fig[0].whole)/raw)
	fmt.Fprintf(tw, "sealed read: ReadAll loop through privacy.Store, opened\t%.0f\t%.2f\t\n", median(fig[1].read), median(fig[1].read)/raw)
	fmt.Fprintf(tw, "sealed rebuild: catch-up, decrypting (and sealing the ChatLog)\t%.0f\t%.2f\t\n", median(fig[1].rebuild), median(fig[1].rebuild)/raw)
	fmt.Fprintf(tw, "sealed rebuild whole\t%.0f\t%.2f\t\n", median(fig[1].whole), median(fig[1].whole)/raw)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "\ndecryption: the sealed log rebuilds at %.2f of the rate in clear (whole: %.2f) and reads at %.2f; median swap %s\n",
		median(fig[1].rebuild)/median(fig[0].rebuild), median(fig[1].whole)/median(fig[0].whole),
		median(fig[1].read)/raw, medianDuration(swaps).Round(time.Millisecond))
	for i, s := range sides {
		read, rebuild := median(fig[i].read), median(fig[i].rebuild)
		verdict := "met"
		if rebuild < rebuildMinRatio*read || rebuild < rebuildMinRate {
			verdict = "MISSED"
		}
		fmt.Fprintf(out, "target (%s): rebuild >= %.1f x its read and >= %d events/s: %s\n", s.name, rebuildMinRatio, rebuildMinRate, verdict)
	}
	return nil
}

// benchKEK returns a random KEK for the sealed log's keys.
func benchKEK() (privacy.KEK, error) {
	raw := make([]byte, privacy.KeySize)
	if _, err := rand.Read(raw); err != nil {
		return privacy.KEK{}, err
	}
	return privacy.NewKEK(raw)
}

// rebuildLog is one of the benchmark's logs, in a scratch database of its
// own: in clear when keks is nil, else sealed under keys wrapped by keks.
type rebuildLog struct {
	name string
	keks privacy.KEKs

	pool      *pgxpool.Pool
	store     *postgres.Store
	closePool func()
	stats     roomgen.Stats
	took      time.Duration
	size      int64 // bytes of the events table
	head      domain.Position
}

// open creates the log's database and writes a history of events events
// into it, through privacy.Store when the log is sealed.
func (l *rebuildLog) open(ctx context.Context, adminURL string, events int) error {
	pool, closePool, err := scratchPool(ctx, adminURL, 16)
	if err != nil {
		return err
	}
	l.pool, l.closePool = pool, closePool
	l.store = postgres.NewStore(pool, postgres.StoreConfig{})
	var app domain.Appender = l.store
	if l.keks != nil {
		ring, err := l.keyring()
		if err != nil {
			return err
		}
		app = privacy.NewStore(l.store, ring)
	}
	if l.stats, l.took, err = writeRebuildLog(ctx, app, events, l.name, os.Stderr); err != nil {
		return fmt.Errorf("write the log %s: %w", l.name, err)
	}
	if err := pool.QueryRow(ctx, `SELECT pg_total_relation_size('events')`).Scan(&l.size); err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE events`); err != nil {
		return err
	}
	l.head, err = waitReadable(ctx, l.store, pool)
	return err
}

func (l *rebuildLog) close() {
	if l.store != nil {
		l.store.Close()
	}
	if l.closePool != nil {
		l.closePool()
	}
}

// keyring opens the sealed log's keyring as chatctl does, its cache cold;
// nil for the log in clear.
func (l *rebuildLog) keyring() (*privacy.Keyring, error) {
	if l.keks == nil {
		return nil, nil
	}
	return privacy.NewKeyring(postgres.NewKeys(l.pool), l.keks, privacy.KeyringConfig{})
}

// round reads the log once, then rebuilds the ChatLog from it, each with a
// keyring of its own when the log is sealed; it returns the read's events
// per second and the rebuild's times.
func (l *rebuildLog) round(ctx context.Context) (float64, rebuildTimes, error) {
	ring, err := l.keyring()
	if err != nil {
		return 0, rebuildTimes{}, err
	}
	n, d, err := readAllLoop(ctx, l.reader(ring), l.head)
	if err != nil {
		return 0, rebuildTimes{}, fmt.Errorf("read: %w", err)
	}
	if n != int64(l.stats.Events) {
		return 0, rebuildTimes{}, fmt.Errorf("read %d events, want %d", n, l.stats.Events)
	}
	if ring, err = l.keyring(); err != nil {
		return 0, rebuildTimes{}, err
	}
	res, err := rebuildOnce(ctx, l.pool, l.reader(ring), ring)
	if err != nil {
		return 0, rebuildTimes{}, fmt.Errorf("rebuild: %w", err)
	}
	if res.applied != int64(l.stats.Events) {
		return 0, rebuildTimes{}, fmt.Errorf("the rebuild applied %d events, want %d", res.applied, l.stats.Events)
	}
	return float64(n) / d.Seconds(), res, nil
}

// reader is the log as chatctl reads it: opened with ring when sealed.
func (l *rebuildLog) reader(ring *privacy.Keyring) domain.EventStore {
	if ring == nil {
		return l.store
	}
	return privacy.NewStore(l.store, ring)
}

// checkSealed makes sure the sealed log holds its questions sealed and
// none in clear, so that its figures are those of decryption.
func (l *rebuildLog) checkSealed(ctx context.Context) error {
	var clear, sealed int
	if err := l.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE data::jsonb ? 'text'), count(*) FILTER (WHERE data::jsonb ? 'sealed')
FROM events WHERE type = $1`, room.TypeMessagePosted).Scan(&clear, &sealed); err != nil {
		return fmt.Errorf("check the sealed log: %w", err)
	}
	if clear > 0 || sealed != l.stats.Questions {
		return fmt.Errorf("the sealed log holds %d questions in clear and %d sealed, want 0 and %d", clear, sealed, l.stats.Questions)
	}
	return nil
}

// checkSealedChatLog makes sure the ChatLog rebuilt from the sealed log
// holds its messages' text sealed, as chatctl's rebuild leaves it.
func (l *rebuildLog) checkSealedChatLog(ctx context.Context) error {
	rows, err := l.pool.Query(ctx, `SELECT text FROM chat_logs WHERE text <> '' LIMIT 1000`)
	if err != nil {
		return fmt.Errorf("check the sealed ChatLog: %w", err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var text string
		if err := rows.Scan(&text); err != nil {
			return fmt.Errorf("check the sealed ChatLog: %w", err)
		}
		if _, ok := privacy.ParseEnvelope(text); !ok {
			return fmt.Errorf("the ChatLog rebuilt from the sealed log holds a message in clear (%d characters)", len(text))
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("check the sealed ChatLog: %w", err)
	}
	if n == 0 {
		return errors.New("the ChatLog rebuilt from the sealed log holds no message text")
	}
	return nil
}

// writeRebuildLog appends a log of events events, a thousand rooms at a
// time (the rooms of a slice converse at once), reporting progress on w.
// The same events give the same history.
func writeRebuildLog(ctx context.Context, app domain.Appender, events int, name string, w io.Writer) (roomgen.Stats, time.Duration, error) {
	start := time.Now()
	var total roomgen.Stats
	last := start
	for slice := uint64(0); total.Events < events; slice++ {
		rooms, st := roomgen.Generate(roomgen.Config{Rooms: 1000, FirstRoom: 1 + int64(slice)*1000, Seed: slice})
		if total.Events+st.Events > events { // trim the last slice
			rooms, st = roomgen.Generate(roomgen.Config{Events: events - total.Events, FirstRoom: 1 + int64(slice)*1000, Seed: slice})
		}
		if _, err := roomgen.Write(ctx, app, rooms, 8, 16, nil); err != nil {
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
		if time.Since(last) > 5*time.Second || total.Events >= events {
			last = time.Now()
			el := time.Since(start)
			rate := float64(total.Events) / el.Seconds()
			fmt.Fprintf(w, "writing the log %s: %d/%d events, %.0f events/s, ETA %s\n", name, total.Events, events, rate,
				(time.Duration(float64(max(events-total.Events, 0))/rate) * time.Second).Round(time.Second))
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
func readAllLoop(ctx context.Context, store domain.AllReader, head domain.Position) (int64, time.Duration, error) {
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
// ChatLog, as `chatctl projections rebuild chatlog --drop-old`, the
// ChatLog sealed with keys when they are set): fresh shadow tables, the
// catch-up, the swap, and dropping the old copy for the next round.
func rebuildOnce(ctx context.Context, pool *pgxpool.Pool, store domain.EventStore, keys *privacy.Keyring) (rebuildTimes, error) {
	var rcfg postgres.ChatLogRebuildConfig
	if keys != nil { // a nil *Keyring in the interface would be called
		rcfg.Keys = keys
	}
	rb, err := postgres.NewChatLogRebuild(pool, rcfg)
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
