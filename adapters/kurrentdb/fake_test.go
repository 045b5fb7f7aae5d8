package kurrentdb

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/adapters/kurrentdb/kurrentdbtest"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/domaintest"
)

// TestContractFakeServer runs the shared contract over the real client
// against fakeServer: it checks the store's plumbing and its answers to
// the server behaviour the fake models, not KurrentDB itself (TestContract
// does that when PARLEY_KURRENTDB_URL is set).
func TestContractFakeServer(t *testing.T) {
	_, url := startFakeServer(t, DefaultMaxAppendSize)
	s := fakeStoreOver(t, url, Options{})
	domaintest.RunEventStoreTests(t, func(t *testing.T) domain.EventStore { return s })
}

func readIDs(t *testing.T, s *Store, stream string) []domain.UUID {
	t.Helper()
	evs, err := s.ReadStream(t.Context(), stream, domain.ReadStreamOptions{})
	if err != nil {
		t.Fatalf("ReadStream(%s): %v", stream, err)
	}
	out := make([]domain.UUID, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

func TestAppendSplitsOverTheServerLimit(t *testing.T) {
	f, url := startFakeServer(t, mib)
	s := fakeStoreOver(t, url, Options{MaxAppendSize: mib})
	batch := []domain.EventData{sized(t, 600*kib), sized(t, 600*kib), sized(t, 300*kib)}
	before := f.AppendRequests()
	res, err := s.Append(t.Context(), "room-1", domain.NoStream(), batch...)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if n := f.AppendRequests() - before; n != 2 {
		t.Errorf("the append took %d requests, want 2 (600 KiB, then 600+300 KiB)", n)
	}
	if diff := cmp.Diff(ids(batch), readIDs(t, s, "room-1")); diff != "" {
		t.Errorf("stored events mismatch (-want +got):\n%s", diff)
	}
	last, err := s.ReadStream(t.Context(), "room-1", domain.ReadStreamOptions{Direction: domain.Backward, From: domain.EndOfStream, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if want := (domain.AppendResult{Version: 2, Position: last[0].Position}); res != want {
		t.Errorf("Append = %+v, want %+v (the last event's read position)", res, want)
	}

	// A retry sends nothing and returns the original result.
	before = f.AppendRequests()
	again, err := s.Append(t.Context(), "room-1", domain.NoStream(), batch...)
	if err != nil || again != res {
		t.Errorf("retry = %+v, %v; want %+v", again, err, res)
	}
	if n := f.AppendRequests() - before; n != 0 {
		t.Errorf("the retry sent %d requests, want none", n)
	}
}

func TestAppendFinishesACutShortSplitAppend(t *testing.T) {
	f, url := startFakeServer(t, mib)
	s := fakeStoreOver(t, url, Options{MaxAppendSize: mib})
	batch := []domain.EventData{sized(t, 600*kib), sized(t, 600*kib), sized(t, 600*kib)}
	// The first request of an earlier attempt got through, then the
	// process died.
	kurrentdbtest.RawAppend(t, url, "room-1", esdb.NoStream{}, toEventData(batch[0]))

	before := f.AppendRequests()
	res, err := s.Append(t.Context(), "room-1", domain.NoStream(), batch...)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if n := f.AppendRequests() - before; n != 2 {
		t.Errorf("finishing the append took %d requests, want 2", n)
	}
	if res.Version != 2 {
		t.Errorf("version = %d, want 2", res.Version)
	}
	if diff := cmp.Diff(ids(batch), readIDs(t, s, "room-1")); diff != "" {
		t.Errorf("stored events mismatch (-want +got):\n%s", diff)
	}

	// A different first event at the same place is a conflict.
	other := []domain.EventData{sized(t, 600*kib), batch[1]}
	var ce *domain.ConflictError
	if _, err := s.Append(t.Context(), "room-1", domain.NoStream(), other...); !errors.As(err, &ce) || ce.Actual != 2 {
		t.Errorf("overlapping append = %v, want a conflict at version 2", err)
	}
}

// An ID stored at the stream's end and appended again at Exact(end) would
// be stored twice by the server; the store refuses it as a conflict.
func TestAppendRefusesToDuplicateAtTheEnd(t *testing.T) {
	f, url := startFakeServer(t, mib)
	s := fakeStoreOver(t, url, Options{MaxAppendSize: mib})
	evs := domaintest.Events(t, "MessagePosted", 2)
	if _, err := s.Append(t.Context(), "room-1", domain.NoStream(), evs[0]); err != nil {
		t.Fatal(err)
	}
	before := f.AppendRequests()
	_, err := s.Append(t.Context(), "room-1", domain.Exact(0), evs[0], evs[1])
	if !errors.Is(err, domain.ErrConflict) {
		t.Errorf("append of a stored ID at the end = %v, want a conflict", err)
	}
	if n := f.AppendRequests() - before; n != 0 {
		t.Errorf("the refused append sent %d requests", n)
	}
	if got := readIDs(t, s, "room-1"); len(got) != 1 {
		t.Errorf("stream has %d events, want 1", len(got))
	}
}

// A retry the tail check cannot see (others appended after it) is left to
// the server's own check, whose reply the store completes with the
// original position.
func TestAppendRetryAfterOthersAppended(t *testing.T) {
	_, url := startFakeServer(t, mib)
	s := fakeStoreOver(t, url, Options{MaxAppendSize: mib})
	evs := domaintest.Events(t, "MessagePosted", 2)
	first, err := s.Append(t.Context(), "room-1", domain.NoStream(), evs...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(t.Context(), "room-1", domain.Any(), domaintest.Events(t, "Other", 5)...); err != nil {
		t.Fatal(err)
	}
	again, err := s.Append(t.Context(), "room-1", domain.NoStream(), evs...)
	if err != nil || again != first {
		t.Errorf("late retry = %+v, %v; want the original %+v", again, err, first)
	}
	if got := readIDs(t, s, "room-1"); len(got) != 7 {
		t.Errorf("stream has %d events, want 7", len(got))
	}
}

func TestAppendTooLargeForTheServer(t *testing.T) {
	_, url := startFakeServer(t, mib)
	s := fakeStoreOver(t, url, Options{})
	_, err := s.Append(t.Context(), "room-1", domain.NoStream(), domaintest.SizedEvent(t, domain.MaxEventSize))
	if domain.ErrorCode(err) != domain.ETOOLARGE {
		t.Errorf("append of an event over the server's limit = %v (code %q), want %s", err, domain.ErrorCode(err), domain.ETOOLARGE)
	}
	if _, err := s.ReadStream(t.Context(), "room-1", domain.ReadStreamOptions{}); !errors.Is(err, domain.ErrStreamNotFound) {
		t.Errorf("after the refused append, read = %v; want not found", err)
	}
}

// An event over the configured MaxAppendEventSize is refused before
// anything is sent; the server (whose own limit is the same) would refuse
// it too, after receiving it.
func TestAppendRefusesAnEventOverTheEventLimit(t *testing.T) {
	f, url := startFakeServer(t, DefaultMaxAppendSize)
	s := fakeStoreOver(t, url, Options{MaxAppendEventSize: 512 * kib})
	before := f.AppendRequests()
	_, err := s.Append(t.Context(), "room-1", domain.NoStream(), sized(t, 100), sized(t, 512*kib+1))
	var ie *domain.InvalidEventError
	if !errors.As(err, &ie) || ie.Index != 1 || domain.ErrorCode(err) != domain.ETOOLARGE {
		t.Errorf("append with an event over MaxAppendEventSize = %v (code %q), want event 1 too large", err, domain.ErrorCode(err))
	}
	if n := f.AppendRequests() - before; n != 0 {
		t.Errorf("the refused append sent %d requests", n)
	}
}

func TestSubscriptionsSurviveAServerDrop(t *testing.T) {
	f, url := startFakeServer(t, mib)
	var logs domaintest.SyncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s := fakeStoreOver(t, url, Options{Logger: logger, MinRetryDelay: 10 * time.Millisecond})

	var mu sync.Mutex
	got := map[string][]domain.UUID{}
	more := make(chan struct{}, 1)
	handler := func(name string) domain.Handler {
		return func(_ context.Context, batch []domain.RecordedEvent) error {
			mu.Lock()
			for _, ev := range batch {
				got[name] = append(got[name], ev.ID)
			}
			mu.Unlock()
			select {
			case more <- struct{}{}:
			default:
			}
			return nil
		}
	}
	waitFor := func(n int) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			mu.Lock()
			done := len(got["all"]) >= n && len(got["stream"]) >= n
			mu.Unlock()
			if done {
				return
			}
			select {
			case <-more:
			case <-deadline:
				t.Fatalf("timed out waiting for %d events: %d and %d", n, len(got["all"]), len(got["stream"]))
			}
		}
	}

	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Go(func() { errs <- s.SubscribeAll(ctx, domain.SubscribeAllOptions{StreamPrefix: "p-"}, handler("all")) })
	wg.Go(func() { errs <- s.SubscribeStream(ctx, "p-room", domain.NoVersion, handler("stream")) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		close(errs)
		for err := range errs {
			if !errors.Is(err, context.Canceled) {
				t.Errorf("subscription ended with %v, want context.Canceled", err)
			}
		}
	})

	evs := domaintest.Events(t, "MessagePosted", 6)
	if _, err := s.Append(t.Context(), "p-room", domain.NoStream(), evs[:3]...); err != nil {
		t.Fatal(err)
	}
	waitFor(3)
	f.DropSubscriptions()
	if _, err := s.Append(t.Context(), "p-room", domain.Exact(2), evs[3:]...); err != nil {
		t.Fatal(err)
	}
	waitFor(6)
	time.Sleep(50 * time.Millisecond) // let duplicates, if any, arrive
	mu.Lock()
	defer mu.Unlock()
	for _, name := range []string{"all", "stream"} {
		if diff := cmp.Diff(ids(evs), got[name]); diff != "" {
			t.Errorf("%s subscription delivered (-want +got):\n%s", name, diff)
		}
	}
	for _, want := range []string{"subscription=$all after=", "subscription=p-room after=2"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no resubscribe logged with %q; logs:\n%s", want, logs.String())
		}
	}
}
