package domaintest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/domain"
)

// waitTimeout bounds every wait in the suite, so a broken store fails the
// test instead of hanging it.
const waitTimeout = 60 * time.Second

// RunEventStoreTests is the contract every domain.EventStore must pass.
// newStore returns a store for one subtest; it may be shared between
// subtests (each uses its own stream-name prefix) or fresh each time.
func RunEventStoreTests(t *testing.T, newStore func(t *testing.T) domain.EventStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s domain.EventStore, prefix string)
	}{
		{"AppendAndReadForward", testAppendAndReadForward},
		{"ReadBackward", testReadBackward},
		{"ReadMissingStream", testReadMissingStream},
		{"ReadTypes", testReadTypes},
		{"Expectations", testExpectations},
		{"ConcurrentWritersOneStream", testConcurrentWritersOneStream},
		{"IdempotentRetry", testIdempotentRetry},
		{"ReadAllPaging", testReadAllPaging},
		{"PagingIterators", testPagingIterators},
		{"HeadPosition", testHeadPosition},
		{"SubscribeAllConcurrentWriters", testSubscribeAllConcurrentWriters},
		{"SubscribeAllCatchUpToLive", testSubscribeAllCatchUpToLive},
		{"SubscribeAllResumeFromCheckpoint", testSubscribeAllResume},
		{"SubscribeStreamCatchUpToLive", testSubscribeStreamCatchUpToLive},
		{"SubscribeStreamNotYetCreated", testSubscribeStreamNotYetCreated},
		{"Cancellation", testCancellation},
		{"HandlerErrorEndsSubscription", testHandlerError},
		{"LargeEvents", testLargeEvents},
		{"InvalidInput", testInvalidInput},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t), UniquePrefix(t))
		})
	}
}

func mustAppend(t *testing.T, s domain.EventStore, stream string, exp domain.ExpectedVersion, evs ...domain.EventData) domain.AppendResult {
	t.Helper()
	res, err := s.Append(t.Context(), stream, exp, evs...)
	if err != nil {
		t.Fatalf("Append(%s, %s, %d events): %v", stream, exp, len(evs), err)
	}
	return res
}

func mustRead(t *testing.T, s domain.EventStore, stream string, opts domain.ReadStreamOptions) []domain.RecordedEvent {
	t.Helper()
	got, err := s.ReadStream(t.Context(), stream, opts)
	if err != nil {
		t.Fatalf("ReadStream(%s, %+v): %v", stream, opts, err)
	}
	return got
}

// checkSame compares a recorded event with what was appended.
func checkSame(t *testing.T, got domain.RecordedEvent, want domain.EventData, stream string, version int64) {
	t.Helper()
	if got.ID != want.ID || got.Type != want.Type || got.Stream != stream || got.Version != version {
		t.Errorf("event = {id %s type %s stream %s version %d}, want {id %s type %s stream %s version %d}",
			got.ID, got.Type, got.Stream, got.Version, want.ID, want.Type, stream, version)
	}
	if !jsonEqual(got.Data, want.Data) {
		t.Errorf("event %d data = %.80s, want %.80s", version, got.Data, want.Data)
	}
	if !metadataIncludes(got.Metadata, want.Metadata) {
		t.Errorf("event %d metadata = %.200s, want %.200s", version, got.Metadata, want.Metadata)
	}
	if got.RecordedAt.IsZero() {
		t.Errorf("event %d has no RecordedAt", version)
	}
}

// jsonEqual compares JSON documents by value; an empty document equals
// null and {} (stores may normalise absent metadata).
func jsonEqual(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	norm := func(x []byte) any {
		if len(bytes.TrimSpace(x)) == 0 {
			return nil
		}
		var v any
		if err := json.Unmarshal(x, &v); err != nil {
			return string(x)
		}
		if m, ok := v.(map[string]any); ok && len(m) == 0 {
			return nil
		}
		return v
	}
	return fmt.Sprint(norm(a)) == fmt.Sprint(norm(b))
}

// metadataIncludes reports whether stored metadata is what was appended,
// give or take the audit chain's fields (prev_hash and hash, which the
// chaining decorator adds): nothing else may be added, changed or dropped.
func metadataIncludes(got, want []byte) bool {
	if base, _, _, ok := domain.SplitChainFields(got); ok {
		got = base
	}
	return jsonEqual(got, want)
}

func testAppendAndReadForward(t *testing.T, s domain.EventStore, prefix string) {
	stream := prefix + "room-1"
	evs := Events(t, "MessagePosted", 5)
	res := mustAppend(t, s, stream, domain.NoStream(), evs[:3]...)
	if res.Version != 2 {
		t.Errorf("first append version = %d, want 2", res.Version)
	}
	res2 := mustAppend(t, s, stream, domain.Exact(2), evs[3:]...)
	if res2.Version != 4 {
		t.Errorf("second append version = %d, want 4", res2.Version)
	}
	if !res.Position.Less(res2.Position) {
		t.Errorf("positions not increasing: %v then %v", res.Position, res2.Position)
	}
	got := mustRead(t, s, stream, domain.ReadStreamOptions{})
	if len(got) != 5 {
		t.Fatalf("read %d events, want 5", len(got))
	}
	for i := range got {
		checkSame(t, got[i], evs[i], stream, int64(i))
		if i > 0 && !got[i-1].Position.Less(got[i].Position) {
			t.Errorf("event %d position %v not after %v", i, got[i].Position, got[i-1].Position)
		}
	}
	if got[4].Position != res2.Position {
		t.Errorf("last event position %v, append returned %v", got[4].Position, res2.Position)
	}
	page := mustRead(t, s, stream, domain.ReadStreamOptions{From: 1, Limit: 2})
	if len(page) != 2 || page[0].Version != 1 || page[1].Version != 2 {
		t.Errorf("read from 1 limit 2 = %v, want versions 1,2", versions(page))
	}
	if past := mustRead(t, s, stream, domain.ReadStreamOptions{From: 5}); len(past) != 0 {
		t.Errorf("read past the end = %v, want nothing", versions(past))
	}
}

func testReadBackward(t *testing.T, s domain.EventStore, prefix string) {
	stream := prefix + "room-1"
	evs := Events(t, "MessagePosted", 6)
	mustAppend(t, s, stream, domain.NoStream(), evs...)
	tests := []struct {
		from  int64
		limit int
		want  []int64
	}{
		{domain.EndOfStream, 0, []int64{5, 4, 3, 2, 1, 0}},
		{domain.EndOfStream, 2, []int64{5, 4}},
		{3, 2, []int64{3, 2}},
		{0, 10, []int64{0}},
		{100, 1, []int64{5}},
	}
	for _, tc := range tests {
		got := mustRead(t, s, stream, domain.ReadStreamOptions{Direction: domain.Backward, From: tc.from, Limit: tc.limit})
		if fmt.Sprint(versions(got)) != fmt.Sprint(tc.want) {
			t.Errorf("backward from %d limit %d = %v, want %v", tc.from, tc.limit, versions(got), tc.want)
		}
		for _, ev := range got {
			checkSame(t, ev, evs[ev.Version], stream, ev.Version)
		}
	}
}

func testReadMissingStream(t *testing.T, s domain.EventStore, prefix string) {
	for _, dir := range []domain.Direction{domain.Forward, domain.Backward} {
		_, err := s.ReadStream(t.Context(), prefix+"nothing", domain.ReadStreamOptions{Direction: dir, From: domain.EndOfStream * int64(dir)})
		var nf *domain.StreamNotFoundError
		if !errors.Is(err, domain.ErrStreamNotFound) || !errors.As(err, &nf) || nf.Stream != prefix+"nothing" {
			t.Errorf("read %s of a missing stream: err = %v, want a *StreamNotFoundError for it", dir, err)
		}
	}
}

func testExpectations(t *testing.T, s domain.EventStore, prefix string) {
	tests := []struct {
		name     string
		existing int // events already in the stream
		exp      domain.ExpectedVersion
		ok       bool
	}{
		{"any on missing", 0, domain.Any(), true},
		{"any on existing", 2, domain.Any(), true},
		{"no stream on missing", 0, domain.NoStream(), true},
		{"no stream on existing", 2, domain.NoStream(), false},
		{"stream exists on missing", 0, domain.StreamExists(), false},
		{"stream exists on existing", 2, domain.StreamExists(), true},
		{"exact right", 2, domain.Exact(1), true},
		{"exact behind", 2, domain.Exact(0), false},
		{"exact ahead", 2, domain.Exact(5), false},
		{"exact on missing", 0, domain.Exact(0), false},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stream := fmt.Sprintf("%sexp-%d", prefix, i)
			if tc.existing > 0 {
				mustAppend(t, s, stream, domain.NoStream(), Events(t, "Seeded", tc.existing)...)
			}
			res, err := s.Append(t.Context(), stream, tc.exp, Events(t, "Tried", 1)...)
			if tc.ok {
				if err != nil {
					t.Fatalf("Append(%s) on %d events: %v", tc.exp, tc.existing, err)
				}
				if res.Version != int64(tc.existing) {
					t.Errorf("version = %d, want %d", res.Version, tc.existing)
				}
				return
			}
			var ce *domain.ConflictError
			if !errors.Is(err, domain.ErrConflict) || !errors.As(err, &ce) {
				t.Fatalf("Append(%s) on %d events: err = %v, want a *ConflictError", tc.exp, tc.existing, err)
			}
			if want := int64(tc.existing) - 1; ce.Actual != want {
				t.Errorf("conflict actual = %d, want %d", ce.Actual, want)
			}
			if ce.Expected != tc.exp {
				t.Errorf("conflict expected = %s, want %s", ce.Expected, tc.exp)
			}
			if domain.ErrorCode(err) != domain.ECONFLICT {
				t.Errorf("ErrorCode = %q, want %q", domain.ErrorCode(err), domain.ECONFLICT)
			}
			if tc.existing > 0 {
				if got := mustRead(t, s, stream, domain.ReadStreamOptions{}); len(got) != tc.existing {
					t.Errorf("a failed append wrote: stream has %d events, want %d", len(got), tc.existing)
				}
			}
		})
	}
}

func testConcurrentWritersOneStream(t *testing.T, s domain.EventStore, prefix string) {
	const writers, rounds = 20, 8
	stream := prefix + "race"
	for round := range rounds {
		expected := domain.Exact(int64(round) - 1)
		var (
			wg        sync.WaitGroup
			start     = make(chan struct{})
			mu        sync.Mutex
			winners   []domain.UUID
			conflicts int
			others    []error
		)
		for range writers {
			ev := Events(t, "Raced", 1)[0]
			wg.Go(func() {
				<-start
				_, err := s.Append(t.Context(), stream, expected, ev)
				mu.Lock()
				defer mu.Unlock()
				var ce *domain.ConflictError
				switch {
				case err == nil:
					winners = append(winners, ev.ID)
				case errors.As(err, &ce) && ce.Actual == int64(round):
					conflicts++
				default:
					others = append(others, err)
				}
			})
		}
		close(start)
		wg.Wait()
		if len(winners) != 1 || conflicts != writers-1 || len(others) > 0 {
			t.Fatalf("round %d: %d winners, %d conflicts with actual %d, other errors %v; want 1 and %d", round, len(winners), conflicts, round, others, writers-1)
		}
		got := mustRead(t, s, stream, domain.ReadStreamOptions{From: int64(round), Limit: 10})
		if len(got) != 1 || got[0].ID != winners[0] {
			t.Fatalf("round %d: stored %v, want the winner %s alone", round, versions(got), winners[0])
		}
	}
}

func testIdempotentRetry(t *testing.T, s domain.EventStore, prefix string) {
	tests := []struct {
		name string
		exp  func(before int64) domain.ExpectedVersion
	}{
		{"no stream", func(int64) domain.ExpectedVersion { return domain.NoStream() }},
		{"exact", func(before int64) domain.ExpectedVersion { return domain.Exact(before) }},
		{"any", func(int64) domain.ExpectedVersion { return domain.Any() }},
		{"stream exists", func(int64) domain.ExpectedVersion { return domain.StreamExists() }},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stream := fmt.Sprintf("%sretry-%d", prefix, i)
			before := domain.NoVersion
			if !tc.exp(0).IsNoStream() {
				before = mustAppend(t, s, stream, domain.NoStream(), Events(t, "Seeded", 2)...).Version
			}
			evs := Events(t, "MessagePosted", 3)
			first := mustAppend(t, s, stream, tc.exp(before), evs...)
			again, err := s.Append(t.Context(), stream, tc.exp(before), evs...)
			if err != nil {
				t.Fatalf("retry: %v", err)
			}
			if again != first {
				t.Errorf("retry returned %+v, want the original %+v", again, first)
			}
			if got := mustRead(t, s, stream, domain.ReadStreamOptions{}); int64(len(got)) != first.Version+1 {
				t.Errorf("after retry the stream has %d events, want %d", len(got), first.Version+1)
			}
			// A partial overlap is a conflict and writes nothing.
			partial := append([]domain.EventData{evs[2]}, Events(t, "MessagePosted", 1)...)
			if _, err := s.Append(t.Context(), stream, domain.Exact(first.Version), partial...); !errors.Is(err, domain.ErrConflict) {
				t.Errorf("partial overlap: err = %v, want a conflict", err)
			}
			if got := mustRead(t, s, stream, domain.ReadStreamOptions{}); int64(len(got)) != first.Version+1 {
				t.Errorf("after the partial overlap the stream has %d events, want %d", len(got), first.Version+1)
			}
		})
	}
}

func testReadAllPaging(t *testing.T, s domain.EventStore, prefix string) {
	var want []domain.UUID
	for i := range 7 {
		evs := Events(t, "MessagePosted", 3)
		mustAppend(t, s, fmt.Sprintf("%sroom-%d", prefix, i%3), domain.Any(), evs...)
		for _, ev := range evs {
			want = append(want, ev.ID)
		}
	}
	// An unrelated stream the prefix filter must keep out.
	mustAppend(t, s, "x"+prefix+"other", domain.Any(), Events(t, "Other", 2)...)

	var got []domain.UUID
	after := domain.Start
	for page := 0; ; page++ {
		evs, err := s.ReadAll(t.Context(), domain.ReadAllOptions{After: after, Limit: 4, StreamPrefix: prefix})
		if err != nil {
			t.Fatalf("ReadAll page %d: %v", page, err)
		}
		if len(evs) > 4 {
			t.Fatalf("ReadAll page %d has %d events, limit 4", page, len(evs))
		}
		if len(evs) == 0 {
			break
		}
		for _, ev := range evs {
			if !after.Less(ev.Position) {
				t.Fatalf("position %v not after %v", ev.Position, after)
			}
			after = ev.Position
			got = append(got, ev.ID)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("paged ReadAll returned %d events %v\nwant %d in append order %v", len(got), got, len(want), want)
	}
}

func testHeadPosition(t *testing.T, s domain.EventStore, prefix string) {
	res := mustAppend(t, s, prefix+"room-1", domain.Any(), Events(t, "MessagePosted", 2)...)
	head, err := s.HeadPosition(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// The store may be shared with other tests, so the head is at or after
	// this append; nothing of this prefix comes after it.
	if head.Less(res.Position) {
		t.Errorf("head %v is before the last append's position %v", head, res.Position)
	}
	if evs, err := s.ReadAll(t.Context(), domain.ReadAllOptions{After: head, StreamPrefix: prefix}); err != nil || len(evs) != 0 {
		t.Errorf("ReadAll after the head = %d events, %v; want none", len(evs), err)
	}
	res2 := mustAppend(t, s, prefix+"room-1", domain.Any(), Events(t, "MessagePosted", 1)...)
	evs, err := s.ReadAll(t.Context(), domain.ReadAllOptions{After: head, StreamPrefix: prefix})
	if err != nil || len(evs) != 1 || evs[0].Position != res2.Position {
		t.Errorf("ReadAll after the old head = %d events, %v; want just the new one", len(evs), err)
	}
}

// collector gathers what a subscription delivers and lets a test wait for it.
type collector struct {
	mu     sync.Mutex
	events []domain.RecordedEvent
	more   chan struct{}
}

func newCollector() *collector { return &collector{more: make(chan struct{}, 1)} }

func (c *collector) handle(_ context.Context, batch []domain.RecordedEvent) error {
	if len(batch) == 0 {
		return errors.New("handler got an empty batch")
	}
	c.mu.Lock()
	c.events = append(c.events, batch...)
	c.mu.Unlock()
	select {
	case c.more <- struct{}{}:
	default:
	}
	return nil
}

func (c *collector) snapshot() []domain.RecordedEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]domain.RecordedEvent(nil), c.events...)
}

// waitFor waits until the collector holds n events, failing after waitTimeout.
func (c *collector) waitFor(t *testing.T, n int, errc <-chan error) []domain.RecordedEvent {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		if got := c.snapshot(); len(got) >= n {
			return got
		}
		select {
		case <-c.more:
		case err := <-errc:
			t.Fatalf("subscription ended early with %d of %d events: %v", len(c.snapshot()), n, err)
		case <-deadline:
			t.Fatalf("timed out with %d of %d events", len(c.snapshot()), n)
		}
	}
}

// subscribe runs sub in a goroutine owned by the test: it is cancelled and
// waited for in Cleanup, and must end with the context's error.
func subscribe(t *testing.T, sub func(ctx context.Context) error) <-chan error {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		errc <- sub(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(waitTimeout):
			t.Errorf("subscription did not stop within %v of cancellation", waitTimeout)
		}
	})
	return errc
}

func testSubscribeAllConcurrentWriters(t *testing.T, s domain.EventStore, prefix string) {
	const writers, streams, perWriter = 32, 100, 12
	c := newCollector()
	errc := subscribe(t, func(ctx context.Context) error {
		return s.SubscribeAll(ctx, domain.SubscribeAllOptions{StreamPrefix: prefix}, c.handle)
	})

	type ack struct {
		stream  string
		version int64
	}
	var (
		mu    sync.Mutex
		acked = make(map[domain.UUID]ack)
		wg    sync.WaitGroup
	)
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := 0; i < perWriter; i++ {
				stream := fmt.Sprintf("%sroom-%d", prefix, rng.IntN(streams))
				n := 1 + rng.IntN(3)
				evs := Events(t, "MessagePosted", n)
				res, err := s.Append(t.Context(), stream, domain.Any(), evs...)
				if err != nil {
					t.Errorf("writer %d append %d: %v", w, i, err)
					return
				}
				mu.Lock()
				for j, ev := range evs {
					acked[ev.ID] = ack{stream, res.Version - int64(n-1-j)}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	c.waitFor(t, len(acked), errc)
	// Let a little more arrive to catch duplicates delivered late.
	time.Sleep(100 * time.Millisecond)
	got := c.snapshot()

	seen := make(map[domain.UUID]bool, len(got))
	lastVersion := make(map[string]int64)
	var lastPos domain.Position
	for i, ev := range got {
		if seen[ev.ID] {
			t.Fatalf("event %s (%s@%d) delivered twice", ev.ID, ev.Stream, ev.Version)
		}
		seen[ev.ID] = true
		a, ok := acked[ev.ID]
		if !ok {
			t.Fatalf("delivered event %s was never acknowledged", ev.ID)
		}
		if a.stream != ev.Stream || a.version != ev.Version {
			t.Errorf("event %s delivered as %s@%d, acknowledged as %s@%d", ev.ID, ev.Stream, ev.Version, a.stream, a.version)
		}
		if v, ok := lastVersion[ev.Stream]; ok && ev.Version != v+1 {
			t.Errorf("stream %s: version %d delivered after %d", ev.Stream, ev.Version, v)
		} else if !ok && ev.Version != 0 {
			t.Errorf("stream %s: first delivered version is %d, want 0", ev.Stream, ev.Version)
		}
		lastVersion[ev.Stream] = ev.Version
		if i > 0 && !lastPos.Less(ev.Position) {
			t.Errorf("position %v delivered after %v", ev.Position, lastPos)
		}
		lastPos = ev.Position
	}
	if len(got) != len(acked) {
		t.Errorf("delivered %d events, acknowledged %d", len(got), len(acked))
	}
}

func testSubscribeAllCatchUpToLive(t *testing.T, s domain.EventStore, prefix string) {
	var want []domain.UUID
	appendSome := func(n int) {
		for i := 0; i < n; i++ {
			evs := Events(t, "MessagePosted", 2)
			mustAppend(t, s, fmt.Sprintf("%sroom-%d", prefix, i%4), domain.Any(), evs...)
			want = append(want, evs[0].ID, evs[1].ID)
		}
	}
	appendSome(50) // history
	c := newCollector()
	errc := subscribe(t, func(ctx context.Context) error {
		return s.SubscribeAll(ctx, domain.SubscribeAllOptions{StreamPrefix: prefix}, c.handle)
	})
	appendSome(50) // racing the catch-up
	c.waitFor(t, 100, errc)
	time.Sleep(50 * time.Millisecond)
	appendSome(20) // live
	c.waitFor(t, len(want), errc)
	time.Sleep(100 * time.Millisecond)
	got := c.snapshot()
	if fmt.Sprint(ids(got)) != fmt.Sprint(want) {
		t.Errorf("subscription delivered %d events, want %d in append order (gap, duplicate or reorder)", len(got), len(want))
	}
}

func testSubscribeAllResume(t *testing.T, s domain.EventStore, prefix string) {
	evs := Events(t, "MessagePosted", 10)
	mustAppend(t, s, prefix+"room-1", domain.NoStream(), evs[:6]...)
	all, err := s.ReadAll(t.Context(), domain.ReadAllOptions{StreamPrefix: prefix})
	if err != nil || len(all) != 6 {
		t.Fatalf("ReadAll = %d events, %v; want 6", len(all), err)
	}
	mustAppend(t, s, prefix+"room-1", domain.Exact(5), evs[6:]...)
	c := newCollector()
	errc := subscribe(t, func(ctx context.Context) error {
		return s.SubscribeAll(ctx, domain.SubscribeAllOptions{After: all[3].Position, StreamPrefix: prefix}, c.handle)
	})
	c.waitFor(t, 6, errc)
	time.Sleep(50 * time.Millisecond)
	got := c.snapshot()
	if fmt.Sprint(versions(got)) != fmt.Sprint([]int64{4, 5, 6, 7, 8, 9}) {
		t.Errorf("resumed after version 3's position: got versions %v, want 4..9", versions(got))
	}
}

func testSubscribeStreamCatchUpToLive(t *testing.T, s domain.EventStore, prefix string) {
	stream := prefix + "room-1"
	mustAppend(t, s, stream, domain.NoStream(), Events(t, "MessagePosted", 30)...)
	mustAppend(t, s, prefix+"room-2", domain.NoStream(), Events(t, "Other", 5)...)
	for _, after := range []int64{domain.NoVersion, 9} {
		t.Run(fmt.Sprintf("after %d", after), func(t *testing.T) {
			last := mustRead(t, s, stream, domain.ReadStreamOptions{Direction: domain.Backward, From: domain.EndOfStream, Limit: 1})[0].Version
			history := int(last - after)
			c := newCollector()
			errc := subscribe(t, func(ctx context.Context) error {
				return s.SubscribeStream(ctx, stream, after, c.handle)
			})
			c.waitFor(t, history, errc)
			// Live events, appended one by one.
			for range 5 {
				mustAppend(t, s, stream, domain.Any(), Events(t, "MessagePosted", 1)...)
			}
			c.waitFor(t, history+5, errc)
			time.Sleep(50 * time.Millisecond)
			got := c.snapshot()
			for i, ev := range got {
				if ev.Stream != stream || ev.Version != after+1+int64(i) {
					t.Fatalf("event %d is %s@%d, want %s@%d", i, ev.Stream, ev.Version, stream, after+1+int64(i))
				}
			}
			if len(got) != history+5 {
				t.Errorf("got %d events, want %d", len(got), history+5)
			}
		})
	}
}

func testSubscribeStreamNotYetCreated(t *testing.T, s domain.EventStore, prefix string) {
	stream := prefix + "later"
	c := newCollector()
	errc := subscribe(t, func(ctx context.Context) error {
		return s.SubscribeStream(ctx, stream, domain.NoVersion, c.handle)
	})
	time.Sleep(100 * time.Millisecond)
	evs := Events(t, "RoomCreated", 2)
	mustAppend(t, s, stream, domain.NoStream(), evs...)
	got := c.waitFor(t, 2, errc)
	if got[0].ID != evs[0].ID || got[1].ID != evs[1].ID {
		t.Errorf("got %v, want %v", ids(got), []domain.UUID{evs[0].ID, evs[1].ID})
	}
}

func testCancellation(t *testing.T, s domain.EventStore, prefix string) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Append(ctx, prefix+"cancelled", domain.Any(), Events(t, "MessagePosted", 1)...); err == nil {
		t.Errorf("append with a cancelled context succeeded")
	}
	if _, err := s.ReadStream(t.Context(), prefix+"cancelled", domain.ReadStreamOptions{}); !errors.Is(err, domain.ErrStreamNotFound) {
		t.Errorf("after a cancelled append, read: %v, want not found", err)
	}

	for _, kind := range []string{"all", "stream"} {
		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error, 1)
		started := make(chan struct{}, 1)
		h := func(context.Context, []domain.RecordedEvent) error {
			select {
			case started <- struct{}{}:
			default:
			}
			return nil
		}
		mustAppend(t, s, prefix+"sub", domain.Any(), Events(t, "MessagePosted", 1)...)
		go func() {
			if kind == "all" {
				errc <- s.SubscribeAll(ctx, domain.SubscribeAllOptions{StreamPrefix: prefix}, h)
			} else {
				errc <- s.SubscribeStream(ctx, prefix+"sub", domain.NoVersion, h)
			}
		}()
		select {
		case <-started:
		case <-time.After(waitTimeout):
			t.Fatalf("subscribe %s delivered nothing", kind)
		}
		cancel()
		select {
		case err := <-errc:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("subscribe %s after cancel returned %v, want context.Canceled", kind, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("subscribe %s did not return within 10s of cancellation", kind)
		}
	}
}

func testHandlerError(t *testing.T, s domain.EventStore, prefix string) {
	mustAppend(t, s, prefix+"room-1", domain.NoStream(), Events(t, "MessagePosted", 3)...)
	boom := errors.New("boom")
	h := func(context.Context, []domain.RecordedEvent) error { return boom }
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	if err := s.SubscribeAll(ctx, domain.SubscribeAllOptions{StreamPrefix: prefix}, h); !errors.Is(err, boom) {
		t.Errorf("SubscribeAll with a failing handler returned %v, want the handler's error", err)
	}
	if err := s.SubscribeStream(ctx, prefix+"room-1", domain.NoVersion, h); !errors.Is(err, boom) {
		t.Errorf("SubscribeStream with a failing handler returned %v, want the handler's error", err)
	}
}

func testLargeEvents(t *testing.T, s domain.EventStore, prefix string) {
	stream := prefix + "large"
	big := SizedEvent(t, domain.MaxEventSize)
	mustAppend(t, s, stream, domain.NoStream(), big)
	got := mustRead(t, s, stream, domain.ReadStreamOptions{})
	if len(got) != 1 || !bytes.Equal(got[0].Data, big.Data) {
		t.Fatalf("a %d byte event did not read back intact", domain.MaxEventSize)
	}
	// Several large events in one append (a store may split the request).
	batch := []domain.EventData{SizedEvent(t, domain.MaxEventSize), SizedEvent(t, domain.MaxEventSize/2), SizedEvent(t, domain.MaxEventSize)}
	res := mustAppend(t, s, stream, domain.Exact(0), batch...)
	if res.Version != 3 {
		t.Errorf("version after the large batch = %d, want 3", res.Version)
	}
	// A retry of the large batch is idempotent.
	again, err := s.Append(t.Context(), stream, domain.Exact(0), batch...)
	if err != nil || again != res {
		t.Errorf("retry of the large batch = %+v, %v; want %+v", again, err, res)
	}
	over := SizedEvent(t, domain.MaxEventSize+1)
	_, err = s.Append(t.Context(), stream, domain.Any(), over)
	var ie *domain.InvalidEventError
	if !errors.As(err, &ie) || domain.ErrorCode(err) != domain.ETOOLARGE {
		t.Errorf("a %d byte event: err = %v, want an *InvalidEventError coded %s", domain.MaxEventSize+1, err, domain.ETOOLARGE)
	}
	if got := mustRead(t, s, stream, domain.ReadStreamOptions{}); len(got) != 4 {
		t.Errorf("stream has %d events, want 4", len(got))
	}
}

func testInvalidInput(t *testing.T, s domain.EventStore, prefix string) {
	good := func() domain.EventData { return Events(t, "MessagePosted", 1)[0] }
	with := func(f func(*domain.EventData)) []domain.EventData {
		ev := good()
		f(&ev)
		return []domain.EventData{ev}
	}
	dup := good()
	tests := []struct {
		name   string
		stream string
		events []domain.EventData
	}{
		{"empty stream name", "", []domain.EventData{good()}},
		{"space in stream name", prefix + "room 1", []domain.EventData{good()}},
		{"slash in stream name", prefix + "room/1", []domain.EventData{good()}},
		{"system stream name", "$" + prefix, []domain.EventData{good()}},
		{"NUL in stream name", prefix + "room\x001", []domain.EventData{good()}},
		{"stream name too long", prefix + string(bytes.Repeat([]byte("a"), domain.MaxStreamNameLength)), []domain.EventData{good()}},
		{"no events", prefix + "s", nil},
		{"nil id", prefix + "s", with(func(e *domain.EventData) { e.ID = domain.UUID{} })},
		{"duplicate ids in one append", prefix + "s", []domain.EventData{dup, dup}},
		{"empty type", prefix + "s", with(func(e *domain.EventData) { e.Type = "" })},
		{"NUL in type", prefix + "s", with(func(e *domain.EventData) { e.Type = "Message\x00Posted" })},
		{"empty data", prefix + "s", with(func(e *domain.EventData) { e.Data = nil })},
		{"data not JSON", prefix + "s", with(func(e *domain.EventData) { e.Data = []byte(`{"a":`) })},
		{"data raw NUL", prefix + "s", with(func(e *domain.EventData) { e.Data = []byte("{\"a\":\"x\x00y\"}") })},
		{"data escaped NUL", prefix + "s", with(func(e *domain.EventData) { e.Data = []byte(`{"a":"x\u0000y"}`) })},
		{"metadata not JSON", prefix + "s", with(func(e *domain.EventData) { e.Metadata = []byte(`nope`) })},
		{"metadata escaped NUL", prefix + "s", with(func(e *domain.EventData) { e.Metadata = []byte(`{"k\u0000":1}`) })},
		{"event over the limit", prefix + "s", []domain.EventData{SizedEvent(t, domain.MaxEventSize+1)}},
		{"second event bad", prefix + "s", []domain.EventData{good(), with(func(e *domain.EventData) { e.Type = "" })[0]}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Append(t.Context(), tc.stream, domain.Any(), tc.events...)
			var ie *domain.InvalidEventError
			if !errors.Is(err, domain.ErrInvalidEvent) || !errors.As(err, &ie) {
				t.Fatalf("err = %v, want an *InvalidEventError", err)
			}
			if code := domain.ErrorCode(err); code != domain.EINVALID && code != domain.ETOOLARGE {
				t.Errorf("ErrorCode = %q, want invalid or too_large", code)
			}
		})
	}
	// Nothing of the above was written.
	all, err := s.ReadAll(t.Context(), domain.ReadAllOptions{StreamPrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 0 {
		t.Errorf("invalid appends wrote %d events", len(all))
	}
	// Escaped backslashes before "u0000" are not a NUL and are accepted.
	ok := good()
	ok.Data = []byte(`{"a":"\\u0000"}`)
	mustAppend(t, s, prefix+"s", domain.NoStream(), ok)
}

func versions(evs []domain.RecordedEvent) []int64 {
	out := make([]int64, len(evs))
	for i, ev := range evs {
		out[i] = ev.Version
	}
	return out
}

func ids(evs []domain.RecordedEvent) []domain.UUID {
	out := make([]domain.UUID, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}
