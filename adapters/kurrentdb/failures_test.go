package kurrentdb

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/adapters/kurrentdb/kurrentdbtest"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/domaintest"
)

// TestAppendReadsFromTheLeader connects the store to a follower whose
// copy of the log lags. The append is forwarded to the leader; its tail
// check and read-back ask for the leader, so the follower answers with
// the leader's address and the reads go there: the append returns its
// event's position, and its retry is recognised.
func TestAppendReadsFromTheLeader(t *testing.T) {
	leader, _ := startFakeServer(t, DefaultMaxAppendSize)
	follower := kurrentdbtest.StartFollower(t, leader)
	s := fakeStoreOver(t, follower.URL(), Options{})
	evs := domaintest.Events(t, "MessagePosted", 2)
	res, err := s.Append(t.Context(), "room-1", domain.NoStream(), evs...)
	if err != nil {
		t.Fatalf("Append through a lagging follower: %v", err)
	}
	if res.Version != 1 || res.Position.IsZero() {
		t.Errorf("Append = %+v, want version 1 and the last event's position", res)
	}
	again, err := s.Append(t.Context(), "room-1", domain.NoStream(), evs...)
	if err != nil || again != res {
		t.Errorf("retry = %+v, %v; want the original %+v", again, err, res)
	}
	if got := readIDs(t, s, "room-1"); len(got) != 2 {
		t.Errorf("room-1 holds %d events, want 2", len(got))
	}
	if leader.LeaderReads() == 0 {
		t.Errorf("no read asked for the leader")
	}
}

// TestPermanentFailures: failures no retry can cure end subscriptions at
// once, with an error that says why and matches domain.ErrPermanent.
func TestPermanentFailures(t *testing.T) {
	f, url := startFakeServer(t, DefaultMaxAppendSize)
	s := fakeStoreOver(t, url, Options{MinRetryDelay: time.Millisecond})
	if _, err := s.Append(t.Context(), "room-9", domain.NoStream(), domaintest.Events(t, "MessagePosted", 1)...); err != nil {
		t.Fatal(err)
	}
	f.HardDelete("room-9")
	h := func(context.Context, []domain.RecordedEvent) error { return nil }
	bogus := domain.Position{Commit: 1234, Prepare: 1200} // a Postgres store's, say

	for _, tc := range []struct {
		name string
		call func(ctx context.Context) error
		code string
		text string
	}{
		{"subscribe to $all after an unknown position", func(ctx context.Context) error {
			return s.SubscribeAll(ctx, domain.SubscribeAllOptions{After: bogus}, h)
		}, domain.EINVALID, "not one of this event store's"},
		{"read $all after an unknown position", func(ctx context.Context) error {
			_, err := s.ReadAll(ctx, domain.ReadAllOptions{After: bogus})
			return err
		}, domain.EINVALID, "not one of this event store's"},
		{"subscribe to a deleted stream", func(ctx context.Context) error {
			return s.SubscribeStream(ctx, "room-9", domain.NoVersion, h)
		}, domain.ENOTFOUND, "is deleted"},
		{"read a deleted stream", func(ctx context.Context) error {
			_, err := s.ReadStream(ctx, "room-9", domain.ReadStreamOptions{})
			return err
		}, domain.ENOTFOUND, "is deleted"},
		{"append to a deleted stream", func(ctx context.Context) error {
			_, err := s.Append(ctx, "room-9", domain.Any(), domaintest.Events(t, "MessagePosted", 1)...)
			return err
		}, domain.ENOTFOUND, "is deleted"},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		err := tc.call(ctx)
		cancel()
		if !errors.Is(err, domain.ErrPermanent) || domain.ErrorCode(err) != tc.code || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("%s: %v (code %q); want a permanent %s error saying %q", tc.name, err, domain.ErrorCode(err), tc.code, tc.text)
		}
	}

	f.Deny()
	err := s.SubscribeAll(t.Context(), domain.SubscribeAllOptions{}, h)
	if !errors.Is(err, domain.ErrPermanent) || domain.ErrorCode(err) != domain.EUNAVAILABLE || !strings.Contains(err.Error(), "read access to $all") {
		t.Errorf("subscribe as a user without rights: %v (code %q); want a permanent unavailable error naming the rights", err, domain.ErrorCode(err))
	}
	if _, err := Dial(t.Context(), url, Options{}); !errors.Is(err, domain.ErrPermanent) || !strings.Contains(err.Error(), "read access to $all") {
		t.Errorf("Dial as a user without rights: %v; want a permanent error naming the $all read right", err)
	}
}

// TestCloseDuringAnOutage: Close, while calls run against a server that
// went away, returns promptly without panicking, and without closing a
// client under calls stuck in it (which only a client killed by failed
// discovery under waiting calls would need); the calls return too.
func TestCloseDuringAnOutage(t *testing.T) {
	f, url := startFakeServer(t, DefaultMaxAppendSize)
	var logs domaintest.SyncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := Dial(t.Context(), url, Options{Logger: logger, MinRetryDelay: time.Millisecond, MaxRetryDelay: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	f.Stop()
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[string]int{}
	for range 8 {
		wg.Go(func() {
			for range 50 {
				ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
				_, err := s.Append(ctx, "room-1", domain.Any(), domaintest.Events(t, "MessagePosted", 1)...)
				cancel()
				mu.Lock()
				codes[domain.ErrorCode(err)]++
				mu.Unlock()
			}
		})
	}
	time.Sleep(200 * time.Millisecond)
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(closeGrace):
		t.Fatalf("Close did not return within %v: calls were stuck in a client", closeGrace)
	}
	wg.Wait()
	if diff := cmp.Diff(map[string]int{domain.EUNAVAILABLE: 400}, codes); diff != "" {
		t.Errorf("append outcomes by code (-want +got):\n%s", diff)
	}
	if strings.Contains(logs.String(), "stuck") {
		t.Errorf("calls got stuck in a client:\n%s", logs.String())
	}
}
