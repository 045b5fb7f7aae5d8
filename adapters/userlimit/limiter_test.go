package userlimit

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/domain/domaintest"
)

// fakeStore is a hand-written shared store: rates are counters per key,
// leases a set per user; it fails while broken.
type fakeStore struct {
	mu      sync.Mutex
	broken  bool
	taken   map[string]int
	leases  map[string]map[string]bool
	calls   int
	refresh []map[string][]string
}

func newFakeStore() *fakeStore {
	return &fakeStore{taken: map[string]int{}, leases: map[string]map[string]bool{}}
}

var errDown = errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")

func (s *fakeStore) Allow(_ context.Context, key string, _ float64, burst int) (bool, time.Duration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.broken {
		return false, 0, errDown
	}
	if s.taken[key] >= burst {
		return false, time.Minute, nil
	}
	s.taken[key]++
	return true, 0, nil
}

func (s *fakeStore) Acquire(_ context.Context, user, lease string, max int) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.broken {
		return false, errDown
	}
	if s.leases[user] == nil {
		s.leases[user] = map[string]bool{}
	}
	if len(s.leases[user]) >= max {
		return false, nil
	}
	s.leases[user][lease] = true
	return true, nil
}

func (s *fakeStore) Release(_ context.Context, user, lease string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken {
		return errDown
	}
	delete(s.leases[user], lease)
	return nil
}

func (s *fakeStore) Refresh(_ context.Context, leases map[string][]string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken {
		return errDown
	}
	s.refresh = append(s.refresh, leases)
	for user, ls := range leases {
		if s.leases[user] == nil {
			s.leases[user] = map[string]bool{}
		}
		for _, l := range ls {
			s.leases[user][l] = true
		}
	}
	return nil
}

func (s *fakeStore) setBroken(b bool) {
	s.mu.Lock()
	s.broken = b
	s.mu.Unlock()
}

// TestLimiterSharesThroughTheStore: two limiters (two replicas) on one
// store enforce one user's rate and connection cap together.
func TestLimiterSharesThroughTheStore(t *testing.T) {
	store := newFakeStore()
	cfg := LimiterConfig{Rates: map[Kind]Rate{Messages: {PerMinute: 60, Burst: 3}}, MaxConnsPerUser: 2}
	a := NewLimiter(cfg, LimiterDeps{Rates: store, Leases: store})
	b := NewLimiter(cfg, LimiterDeps{Rates: store, Leases: store})
	ctx := t.Context()
	var got []bool
	for i := range 5 {
		lim := a
		if i%2 == 1 {
			lim = b
		}
		ok, _ := lim.Take(ctx, Messages, "42")
		got = append(got, ok)
	}
	if want := []bool{true, true, true, false, false}; !equal(got, want) {
		t.Errorf("five messages across two replicas allowed %v, want %v (a burst of 3 in all)", got, want)
	}
	if ok, _ := a.Take(ctx, "unknown kind", "42"); !ok {
		t.Error("a kind without a rate is limited")
	}
	relA, ok1 := a.Hold(ctx, "42")
	_, ok2 := b.Hold(ctx, "42")
	_, ok3 := a.Hold(ctx, "42")
	if !ok1 || !ok2 || ok3 {
		t.Fatalf("three connections across two replicas: %v %v %v, want two", ok1, ok2, ok3)
	}
	relA()
	relA() // idempotent
	if _, ok := b.Hold(ctx, "42"); !ok {
		t.Error("after a release the other replica is refused")
	}
}

// TestLimiterFallsBackWhileTheStoreFails: while the store fails, each
// limiter keeps its own limits, warns once, asks the store again only
// after Retry, and says when it is back.
func TestLimiterFallsBackWhileTheStoreFails(t *testing.T) {
	store := newFakeStore()
	now := time.Unix(0, 0)
	var logs domaintest.SyncBuffer
	l := NewLimiter(LimiterConfig{Rates: map[Kind]Rate{Requests: {PerMinute: 60, Burst: 2}}, MaxConnsPerUser: 1, Retry: time.Second},
		LimiterDeps{Rates: store, Leases: store, Now: func() time.Time { return now }, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	ctx := t.Context()
	store.setBroken(true)
	var got []bool
	for range 3 {
		ok, _ := l.Take(ctx, Requests, "7")
		got = append(got, ok)
	}
	if want := []bool{true, true, false}; !equal(got, want) {
		t.Errorf("requests with the store down: %v, want %v (the per-process burst)", got, want)
	}
	if _, ok := l.Hold(ctx, "7"); !ok {
		t.Error("the first connection with the store down is refused")
	}
	if _, ok := l.Hold(ctx, "7"); ok {
		t.Error("a second connection with the store down is admitted past the per-process cap")
	}
	if store.calls != 1 {
		t.Errorf("the store was asked %d times within Retry of failing, want once", store.calls)
	}
	if n := strings.Count(logs.String(), "shared limits unavailable"); n != 1 {
		t.Errorf("%d warnings, want 1:\n%s", n, logs.String())
	}
	store.setBroken(false)
	now = now.Add(time.Second)
	if ok, _ := l.Take(ctx, Requests, "7"); !ok {
		t.Error("the store is back but the request is refused")
	}
	if !strings.Contains(logs.String(), "shared limits restored") {
		t.Errorf("no recovery logged:\n%s", logs.String())
	}
	// The connection taken while the store failed reaches it with the
	// next heartbeat.
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	l.cfg.Heartbeat = 10 * time.Millisecond
	go func() { done <- l.Run(rctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		store.mu.Lock()
		n := len(store.leases["7"])
		store.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the heartbeat did not register the connection taken while the store failed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
}

func equal(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
