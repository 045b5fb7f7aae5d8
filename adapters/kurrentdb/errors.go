package kurrentdb

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/parleychat/parley/domain"
)

// errorKind is how the store treats a client error.
type errorKind uint8

const (
	kindOther       errorKind = iota
	kindUnavailable           // the server or the connection failed; a retry may work
	kindClosed                // the client is closed for good; only a new client helps
	kindTooLarge              // the server refused an append over its size limit
	kindNotFound              // the stream does not exist
	kindConflict              // wrong expected version
	kindDenied                // bad credentials or missing rights
)

// clientCode returns the client's code for err, ErrorCodeUnknown when err
// is not (or does not wrap) an *esdb.Error.
func clientCode(err error) esdb.ErrorCode {
	var e *esdb.Error
	if errors.As(err, &e) {
		return e.Code()
	}
	return esdb.ErrorCodeUnknown
}

// classify sorts a client error. The client reports most failures as an
// *esdb.Error with a code, but some calls return the bare gRPC status (a
// failed ReadStream/ReadAll call, for one), and it maps some statuses,
// InvalidArgument among them, to ErrorCodeUnknown; so the gRPC status code
// is consulted too.
func classify(err error) errorKind {
	switch clientCode(err) {
	case esdb.ErrorCodeConnectionClosed:
		return kindClosed
	case esdb.ErrorUnavailable, esdb.ErrorCodeDeadlineExceeded, esdb.ErrorCodeNotLeader, esdb.ErrorAborted:
		return kindUnavailable
	case esdb.ErrorCodeResourceNotFound:
		return kindNotFound
	case esdb.ErrorCodeWrongExpectedVersion:
		return kindConflict
	case esdb.ErrorCodeUnauthenticated, esdb.ErrorCodeAccessDenied:
		return kindDenied
	}
	st, ok := status.FromError(err)
	if !ok {
		return kindOther
	}
	switch st.Code() {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted, codes.ResourceExhausted:
		return kindUnavailable
	case codes.NotFound:
		return kindNotFound
	case codes.Unauthenticated, codes.PermissionDenied:
		return kindDenied
	case codes.InvalidArgument:
		// KurrentDB's "Maximum Append Size of N Exceeded." and
		// "Event ... exceeds the maximum append event size".
		if strings.Contains(strings.ToLower(st.Message()), "size") {
			return kindTooLarge
		}
	}
	return kindOther
}

// mapError wraps a client error with what failed. When ctx is done it
// returns ctx's error instead (the client reports a cancelled call as a
// gRPC status that does not match context.Canceled). Failures a retry may
// cure carry a *domain.Error coded EUNAVAILABLE, oversized appends one
// coded ETOOLARGE; the client's error stays in the chain for errors.As.
func mapError(ctx context.Context, err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("kurrentdb: %s: %w", what, cerr)
	}
	switch classify(err) {
	case kindUnavailable:
		return fmt.Errorf("kurrentdb: %s: %w: %w", what, domain.Errorf(domain.EUNAVAILABLE, "the event store is unavailable; try again later"), err)
	case kindClosed:
		return fmt.Errorf("kurrentdb: %s: %w: %w", what, domain.Errorf(domain.EUNAVAILABLE, "the event store connection is closed"), err)
	case kindTooLarge:
		return fmt.Errorf("kurrentdb: %s: %w: %w", what, domain.Errorf(domain.ETOOLARGE, "the events are larger than the event store accepts in one append"), err)
	}
	return fmt.Errorf("kurrentdb: %s: %w", what, err)
}

// permanent reports whether a subscription that failed with err should
// give up instead of resubscribing: the client is closed for good, or the
// server refuses the credentials.
func permanent(err error) bool {
	k := classify(err)
	return k == kindClosed || k == kindDenied
}

// currentFromConflict extracts the stream's current version from the
// client's wrong-expected-version error. The client does not expose it as
// a field: it formats it into the message as
// "wrong expected version: expecting '<exp>' but got '<current>'", where
// current is a revision or "no_stream" (esdb/client.go, AppendToStream).
func currentFromConflict(err error) (int64, bool) {
	msg := err.Error()
	const marker = "but got '"
	i := strings.LastIndex(msg, marker)
	if i < 0 {
		return 0, false
	}
	rest := msg[i+len(marker):]
	j := strings.IndexByte(rest, '\'')
	if j < 0 {
		return 0, false
	}
	cur := rest[:j]
	if cur == "no_stream" {
		return domain.NoVersion, true
	}
	v, err := strconv.ParseInt(cur, 10, 64)
	if err != nil || v < 0 {
		return 0, false
	}
	return v, true
}
