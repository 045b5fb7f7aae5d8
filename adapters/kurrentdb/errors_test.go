package kurrentdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/parleychat/parley/domain"
)

// The client's error type has unexported fields, so most codes cannot be
// built here; esdb.FromError wraps any other error as ErrorCodeUnknown,
// which is how the client reports statuses it does not map (InvalidArgument,
// say). Real coded errors come from TestDeadClient.
func TestClassify(t *testing.T) {
	unknown := func(err error) error {
		e, _ := esdb.FromError(err)
		return e
	}
	tests := []struct {
		name string
		err  error
		want errorKind
	}{
		{"plain error", errors.New("boom"), kindOther},
		{"bare unavailable status", status.Error(codes.Unavailable, "connection refused"), kindUnavailable},
		{"bare deadline status", status.Error(codes.DeadlineExceeded, "deadline"), kindUnavailable},
		{"wrapped unavailable status", fmt.Errorf("could not construct append operation. Reason: %w", unknown(status.Error(codes.Unavailable, "x"))), kindUnavailable},
		{"max append size", unknown(status.Error(codes.InvalidArgument, "Maximum Append Size of 1048576 Exceeded.")), kindTooLarge},
		{"max event size", unknown(status.Error(codes.InvalidArgument, "Event with Id: x, Size: 2000000, exceeds Maximum Append Event Size of 1048576.")), kindTooLarge},
		{"other invalid argument", unknown(status.Error(codes.InvalidArgument, "bad stream name")), kindOther},
		{"not found status", status.Error(codes.NotFound, "gone"), kindNotFound},
		{"permission denied", unknown(status.Error(codes.PermissionDenied, "no")), kindDenied},
		{"internal", unknown(status.Error(codes.Internal, "bug")), kindOther},
		{"append request sent on a dropped stream", fmt.Errorf("could not send append request header. Reason: %w", unknown(io.EOF)), kindUnavailable},
	}
	for _, tc := range tests {
		if got := classify(tc.err); got != tc.want {
			t.Errorf("%s: classify = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestMapError(t *testing.T) {
	live := context.Background()
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	unavailable := status.Error(codes.Unavailable, "connection refused")
	tooLarge := status.Error(codes.InvalidArgument, "Maximum Append Size of 1048576 Exceeded.")
	other := errors.New("boom")

	tests := []struct {
		name     string
		ctx      context.Context
		err      error
		code     string
		is       error // errors.Is(got, is)
		safeText string
	}{
		{"cancelled", cancelled, unavailable, domain.EINTERNAL, context.Canceled, "internal error"},
		{"unavailable", live, unavailable, domain.EUNAVAILABLE, unavailable, "the event store is unavailable; try again later"},
		{"too large", live, tooLarge, domain.ETOOLARGE, tooLarge, "the events are larger than the event store accepts in one append"},
		{"other", live, other, domain.EINTERNAL, other, "internal error"},
	}
	for _, tc := range tests {
		got := mapError(tc.ctx, tc.err, "append to %s", "room-1")
		if !strings.HasPrefix(got.Error(), "kurrentdb: append to room-1: ") {
			t.Errorf("%s: error %q lacks the context prefix", tc.name, got)
		}
		if code := domain.ErrorCode(got); code != tc.code {
			t.Errorf("%s: ErrorCode = %q, want %q", tc.name, code, tc.code)
		}
		if !errors.Is(got, tc.is) {
			t.Errorf("%s: %v does not wrap %v", tc.name, got, tc.is)
		}
		if msg := domain.ErrorMessage(got); msg != tc.safeText {
			t.Errorf("%s: ErrorMessage = %q, want %q", tc.name, msg, tc.safeText)
		}
	}
}

func TestCurrentFromConflict(t *testing.T) {
	// The text the client builds, after its "[ErrorCodeWrongExpectedVersion] ..." prefix.
	wev := func(exp, cur string) error {
		return fmt.Errorf("[ErrorCodeWrongExpectedVersion] an append request failed the optimistic concurrency on the server: wrong expected version: expecting '%s' but got '%s'", exp, cur)
	}
	tests := []struct {
		err    error
		want   int64
		wantOK bool
	}{
		{wev("3", "7"), 7, true},
		{wev("any", "0"), 0, true},
		{wev("stream_exists", "no_stream"), domain.NoVersion, true},
		{wev("no_stream", "12"), 12, true},
		{wev("3", "-5"), 0, false},
		{wev("3", "many"), 0, false},
		{errors.New("wrong expected version"), 0, false},
		{errors.New("but got '7"), 0, false},
	}
	for _, tc := range tests {
		got, ok := currentFromConflict(tc.err)
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("currentFromConflict(%q) = %d, %v; want %d, %v", tc.err, got, ok, tc.want, tc.wantOK)
		}
	}
}

func TestPermanent(t *testing.T) {
	if permanent(status.Error(codes.Unavailable, "x")) {
		t.Errorf("an unavailable server is not permanent")
	}
	if permanent(errors.New("subscription dropped: stream reset")) {
		t.Errorf("an unknown drop is not permanent")
	}
	if !permanent(status.Error(codes.PermissionDenied, "x")) || !permanent(status.Error(codes.Unauthenticated, "x")) {
		t.Errorf("refused credentials are permanent")
	}
}

// closedAddr returns a local address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Skipf("no local TCP: %v", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// TestNoServer drives a real client at an address with no server: its
// discovery fails, after which the v4 client is closed for good. Calls
// are unavailable, within their deadline; the store keeps rebuilding its
// client in the background; subscriptions keep retrying until their
// context ends; Close returns.
func TestNoServer(t *testing.T) {
	cfg, err := esdb.ParseConnectionString("esdb://" + closedAddr(t) + "?tls=false&maxDiscoverAttempts=1&discoveryInterval=1")
	if err != nil {
		t.Fatal(err)
	}
	s, err := newStore(cfg, Options{MinRetryDelay: 10 * time.Millisecond, MaxRetryDelay: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	ctx := t.Context()
	ev := sized(t, 64)

	for i := range 3 {
		_, err = s.Append(ctx, "room-1", domain.Any(), ev)
		if domain.ErrorCode(err) != domain.EUNAVAILABLE || !strings.HasPrefix(err.Error(), "kurrentdb: ") {
			t.Errorf("append %d: err = %v (code %q), want unavailable", i, err, domain.ErrorCode(err))
		}
	}
	if _, err := s.ReadStream(ctx, "room-1", domain.ReadStreamOptions{}); domain.ErrorCode(err) != domain.EUNAVAILABLE {
		t.Errorf("ReadStream: %v, want unavailable", err)
	}
	if _, err := s.ReadAll(ctx, domain.ReadAllOptions{}); domain.ErrorCode(err) != domain.EUNAVAILABLE {
		t.Errorf("ReadAll: %v, want unavailable", err)
	}
	if err := s.Check(ctx); domain.ErrorCode(err) != domain.EUNAVAILABLE || !strings.Contains(err.Error(), "reconnecting since") {
		t.Errorf("Check: %v, want unavailable, reconnecting", err)
	}

	h := func(context.Context, []domain.RecordedEvent) error { return nil }
	sctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := s.SubscribeAll(sctx, domain.SubscribeAllOptions{}, h); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("SubscribeAll with no server = %v, want it to retry until its context ends", err)
	}
	if err := s.SubscribeStream(sctx, "room-1", domain.NoVersion, h); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("SubscribeStream with no server = %v, want it to retry until its context ends", err)
	}
}

func TestDial(t *testing.T) {
	const secret = "s3cr3t-pa55"
	tests := []struct {
		name, url string
		code      string
	}{
		{"bad scheme", "http://admin:" + secret + "@localhost:2113", domain.EINTERNAL},
		{"unparsable", "esdb://admin:" + secret + "@[::1", domain.EINTERNAL},
		{"bad port", "esdb://admin:" + secret + "@localhost:port?tls=false", domain.EINTERNAL},
		{"no server", "esdb://admin:" + secret + "@" + closedAddr(t) + "?tls=false&maxDiscoverAttempts=1&discoveryInterval=1", domain.EUNAVAILABLE},
	}
	for _, tc := range tests {
		s, err := Dial(t.Context(), tc.url, Options{})
		if err == nil {
			_ = s.Close()
			t.Errorf("%s: Dial succeeded", tc.name)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: the error shows the password: %v", tc.name, err)
		}
		if !strings.HasPrefix(err.Error(), "kurrentdb: ") {
			t.Errorf("%s: error %q lacks the package prefix", tc.name, err)
		}
		if code := domain.ErrorCode(err); code != tc.code {
			t.Errorf("%s: ErrorCode = %q, want %q (err %v)", tc.name, code, tc.code, err)
		}
	}
}
