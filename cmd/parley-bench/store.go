package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
)

type appendWorkload struct {
	name    string
	writers int
	batch   int
}

var storeWorkloads = []appendWorkload{
	{"(a) 1 writer, 1 event/append", 1, 1},
	{"(b) 64 writers, distinct streams, 1 event/append", 64, 1},
	{"(c) batches of 32 events, 1 writer", 1, 32},
	{"(c) batches of 32 events, 8 writers", 8, 32},
}

// benchStore measures Store.Append against plain INSERTs of rows of the
// same size into an unindexed table, with the same batching and
// concurrency, in one run: rounds alternate baseline and store.
func benchStore(ctx context.Context, cfg config, out io.Writer) error {
	pool, closePool, err := scratchPool(ctx, cfg.adminURL, 72)
	if err != nil {
		return err
	}
	defer closePool()
	if _, err := pool.Exec(ctx, `CREATE TABLE bench_raw (id uuid, stream text, version bigint, type text, data json, metadata json)`); err != nil {
		return err
	}
	store := postgres.NewStore(pool, postgres.StoreConfig{})
	defer store.Close()

	var settings []string
	for _, name := range []string{"server_version", "fsync", "synchronous_commit", "wal_sync_method"} {
		var v string
		if err := pool.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v); err != nil {
			return err
		}
		settings = append(settings, name+"="+v)
	}
	fmt.Fprintf(out, "\n== event store appends (Postgres: %s)\n", strings.Join(settings, ", "))
	fmt.Fprintf(out, "   median of %d rounds of %s per side, rounds interleaved; event ~%d bytes (type+data+metadata)\n\n",
		cfg.rounds, cfg.duration, sampleEvent(domain.UUID{}).Size())

	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tstore events/s\tbaseline events/s\tratio\tstore p50 append\tstore p99 append\t")
	for wi, w := range storeWorkloads {
		var storeRates, baseRates []float64
		var lat []time.Duration
		for r := range cfg.rounds {
			rate, _, err := runAppends(ctx, cfg.duration, w, func(ctx context.Context, writer int, evs []domain.EventData, version *int64) error {
				return baselineInsert(ctx, pool, fmt.Sprintf("bench-%d-%d-%d", wi, r, writer), evs)
			})
			if err != nil {
				return fmt.Errorf("%s baseline: %w", w.name, err)
			}
			baseRates = append(baseRates, rate)
			rate, l, err := runAppends(ctx, cfg.duration, w, func(ctx context.Context, writer int, evs []domain.EventData, version *int64) error {
				res, err := store.Append(ctx, fmt.Sprintf("bench-%d-%d-%d", wi, r, writer), domain.Exact(*version), evs...)
				if err == nil {
					*version = res.Version
				}
				return err
			})
			if err != nil {
				return fmt.Errorf("%s store: %w", w.name, err)
			}
			storeRates = append(storeRates, rate)
			lat = append(lat, l...)
		}
		s, b := median(storeRates), median(baseRates)
		slices.Sort(lat)
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.2f\t%s\t%s\t\n", w.name, s, b, s/b, pct(lat, 50), pct(lat, 99))
	}
	return tw.Flush()
}

func sampleEvent(id domain.UUID) domain.EventData {
	meta := domain.Metadata{CorrelationID: "5f0c7c52-0d61-4d1e-9c5e-1b7a8f1d2c3e", CausationID: "9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d", UserID: "42", OccurredAt: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)}
	ev, err := room.EncodeEvent(id, room.AnswerChunk{AnswerID: domain.MustParseUUID("0b9f6f0e-3a0c-4e7e-9a55-3c9d2f1e8a77"), Seq: 17,
		Delta: "The youth housing allowance covers up to 200,000 won a month for renters aged 19 to 34 whose household income is below the median."}, meta)
	if err != nil {
		panic(err) // a room event always encodes
	}
	return ev
}

// runAppends runs w.writers goroutines appending batches of w.batch events
// for d, and returns events per second and every call's latency.
func runAppends(ctx context.Context, d time.Duration, w appendWorkload, do func(ctx context.Context, writer int, evs []domain.EventData, version *int64) error) (float64, []time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		total    atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		lats     = make([][]time.Duration, w.writers)
	)
	deadline := time.Now().Add(d)
	start := time.Now()
	for i := range w.writers {
		wg.Go(func() {
			version := domain.NoVersion
			for time.Now().Before(deadline) {
				evs := make([]domain.EventData, w.batch)
				for j := range evs {
					var id domain.UUID
					_, _ = rand.Read(id[:])
					evs[j] = sampleEvent(id)
				}
				t0 := time.Now()
				if err := do(ctx, i, evs, &version); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					cancel()
					return
				}
				lats[i] = append(lats[i], time.Since(t0))
				total.Add(int64(w.batch))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	return float64(total.Load()) / elapsed.Seconds(), all, firstErr
}

func baselineInsert(ctx context.Context, pool *pgxpool.Pool, stream string, evs []domain.EventData) error {
	ids := make([][16]byte, len(evs))
	types := make([]string, len(evs))
	data := make([]string, len(evs))
	meta := make([]string, len(evs))
	for i, ev := range evs {
		ids[i], types[i], data[i], meta[i] = ev.ID, ev.Type, string(ev.Data), string(ev.Metadata)
	}
	_, err := pool.Exec(ctx, `INSERT INTO bench_raw (id, stream, version, type, data, metadata)
		SELECT u.id, $1, u.ord, u.typ, u.dat::json, u.met::json
		  FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS u(id, typ, dat, met, ord)`,
		stream, ids, types, data, meta)
	return err
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// quantile returns the p-th percentile of sorted, 0 when it is empty.
func quantile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, len(sorted)*p/100)]
}

// pct formats the p-th percentile of sorted as ms does, "-" when it is
// empty.
func pct(sorted []time.Duration, p int) string {
	if len(sorted) == 0 {
		return "-"
	}
	return ms(quantile(sorted, p))
}
