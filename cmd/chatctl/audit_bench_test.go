package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/adapters/postgres/pgtest"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
)

// BenchmarkAuditVerifyAll times `chatctl audit verify --all` over a fresh
// database of PARLEY_AUDIT_BENCH_ROOMS rooms (default 10,000), each a
// question and an answer of 20 chunks (24 events), written through the
// chain store. Its baseline, in the same run, reads the same rooms with
// the same parallelism without hashing anything. Each iteration is one
// whole run; use -benchtime=3x and read the medians it logs:
//
//	go test -run '^$' -bench AuditVerifyAll -benchtime 3x ./cmd/chatctl/
func BenchmarkAuditVerifyAll(b *testing.B) {
	n := 10000
	if v := os.Getenv("PARLEY_AUDIT_BENCH_ROOMS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("PARLEY_AUDIT_BENCH_ROOMS=%q is not a positive number", v)
		}
	}
	url := pgtest.NewDatabase(b)
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	store := postgres.NewStore(pool, postgres.StoreConfig{})
	b.Cleanup(func() { store.Close() })
	rooms := make([]int64, n)
	for i := range rooms {
		rooms[i] = int64(i + 1)
	}
	start := time.Now()
	auditSeed(b, store, rooms, 20, 8)
	fmt.Printf("seeded %d rooms (%d events) through the chain store in %s\n", n, n*24, time.Since(start).Round(time.Millisecond))
	env := map[string]string{"PARLEY_DATABASE_URL": url}

	var verify, baseline []time.Duration
	b.Run("verify", func(b *testing.B) {
		for b.Loop() {
			t0 := time.Now()
			err := run(context.Background(), []string{"audit", "verify", "--all"}, func(k string) string { return env[k] }, nil, io.Discard, io.Discard)
			if err != nil {
				b.Fatal(err)
			}
			verify = append(verify, time.Since(t0))
		}
		b.ReportMetric(float64(n)/auditMedian(verify).Seconds(), "rooms/s")
	})
	b.Run("read-baseline", func(b *testing.B) {
		for b.Loop() {
			t0 := time.Now()
			if err := auditReadRooms(store, 4); err != nil {
				b.Fatal(err)
			}
			baseline = append(baseline, time.Since(t0))
		}
		b.ReportMetric(float64(n)/auditMedian(baseline).Seconds(), "rooms/s")
	})
	if len(verify) > 0 && len(baseline) > 0 {
		mv, mb := auditMedian(verify), auditMedian(baseline)
		fmt.Printf("verify --all over %d rooms: median %s (%.0f rooms/s); read-only baseline median %s (%.0f rooms/s); ratio %.2f\n",
			n, mv.Round(time.Millisecond), float64(n)/mv.Seconds(), mb.Round(time.Millisecond), float64(n)/mb.Seconds(), mv.Seconds()/mb.Seconds())
	}
}

// auditReadRooms lists the rooms and reads every one of them, parallel at a
// time, as verify does, without hashing.
func auditReadRooms(store *postgres.Store, parallel int) error {
	ctx := context.Background()
	names, err := store.Streams(ctx, room.StreamPrefix)
	if err != nil {
		return err
	}
	var (
		next   atomic.Int64
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed error
	)
	for range parallel {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(names); i = int(next.Add(1) - 1) {
				evs, err := store.ReadStream(ctx, names[i], domain.ReadStreamOptions{})
				if err == nil && len(evs) == 0 {
					err = fmt.Errorf("%s is empty", names[i])
				}
				if err != nil {
					mu.Lock()
					failed = err
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return failed
}

func auditMedian(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
