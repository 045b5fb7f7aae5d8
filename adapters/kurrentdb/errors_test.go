package kurrentdb

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

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

// TestDeadClient drives a real client at an address with no server: its
// discovery fails (ErrorUnavailable), after which the client is closed for
// good (ErrorCodeConnectionClosed). Both are unavailable to callers, and a
// subscription gives up instead of retrying a closed client forever.
func TestDeadClient(t *testing.T) {
	cfg, err := esdb.ParseConnectionString("esdb://" + closedAddr(t) + "?tls=false&maxDiscoverAttempts=1&discoveryInterval=1")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Logger = esdb.NoopLogging()
	client, err := esdb.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	s := New(client, Options{})
	ctx := t.Context()
	ev := sized(t, 64)

	_, err = s.Append(ctx, "room-1", domain.Any(), ev)
	if code := clientCode(err); code != esdb.ErrorUnavailable {
		t.Errorf("first append: client code %d, want ErrorUnavailable; err = %v", code, err)
	}
	if domain.ErrorCode(err) != domain.EUNAVAILABLE || !strings.Contains(err.Error(), "kurrentdb: read room-1") {
		t.Errorf("first append: err = %v (code %q), want an unavailable error from the tail read", err, domain.ErrorCode(err))
	}

	_, err = s.ReadStream(ctx, "room-1", domain.ReadStreamOptions{})
	if code := clientCode(err); code != esdb.ErrorCodeConnectionClosed || domain.ErrorCode(err) != domain.EUNAVAILABLE {
		t.Errorf("read after failed discovery: client code %d, ErrorCode %q; want ErrorCodeConnectionClosed, unavailable; err = %v", code, domain.ErrorCode(err), err)
	}
	if _, err := s.ReadAll(ctx, domain.ReadAllOptions{}); domain.ErrorCode(err) != domain.EUNAVAILABLE {
		t.Errorf("ReadAll on a closed client: %v, want unavailable", err)
	}

	h := func(context.Context, []domain.RecordedEvent) error { return nil }
	err = s.SubscribeAll(ctx, domain.SubscribeAllOptions{}, h)
	if domain.ErrorCode(err) != domain.EUNAVAILABLE || !strings.Contains(err.Error(), "subscribe to $all") {
		t.Errorf("SubscribeAll on a closed client = %v, want an unavailable error", err)
	}
	err = s.SubscribeStream(ctx, "room-1", domain.NoVersion, h)
	if domain.ErrorCode(err) != domain.EUNAVAILABLE {
		t.Errorf("SubscribeStream on a closed client = %v, want an unavailable error", err)
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
