package kurrentdb

import (
	"context"
	"errors"
	"fmt"
	"io"
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
	kindClosed                // the client is closed for good; the store rebuilds one
	kindNotLeader             // a follower answered; the client has moved to the leader
	kindTooLarge              // the server refused an append over its size limits
	kindNotFound              // the stream does not exist
	kindConflict              // wrong expected version
	kindDenied                // bad credentials or missing rights
	kindDeleted               // the stream is deleted (tombstoned)
	kindBadPosition           // a $all position the server does not know
	kindUnsupported           // the server lacks the API
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
// failed ReadStream/ReadAll call, a dropped subscription), and it maps
// some statuses, InvalidArgument among them, to ErrorCodeUnknown; so the
// gRPC status code is consulted too. The statuses are KurrentDB's, from
// its RpcExceptions.cs.
func classify(err error) errorKind {
	if errors.As(err, new(closedUnder)) {
		return kindClosed
	}
	if errors.Is(err, io.EOF) {
		// A send on a stream the connection dropped under (an append's
		// request), which the client reports as ErrorCodeUnknown.
		return kindUnavailable
	}
	switch clientCode(err) {
	case esdb.ErrorCodeConnectionClosed:
		return kindClosed
	case esdb.ErrorUnavailable, esdb.ErrorCodeDeadlineExceeded, esdb.ErrorAborted:
		return kindUnavailable
	case esdb.ErrorCodeNotLeader:
		return kindNotLeader
	case esdb.ErrorCodeResourceNotFound:
		return kindNotFound
	case esdb.ErrorCodeWrongExpectedVersion:
		return kindConflict
	case esdb.ErrorCodeUnauthenticated, esdb.ErrorCodeAccessDenied:
		return kindDenied
	case esdb.ErrorCodeStreamDeleted:
		return kindDeleted
	case esdb.ErrorCodeUnsupportedFeature:
		return kindUnsupported
	}
	st, ok := status.FromError(unwrapStatus(err))
	if !ok {
		return kindOther
	}
	msg := strings.ToLower(st.Message())
	switch st.Code() {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted, codes.ResourceExhausted:
		return kindUnavailable
	case codes.Canceled:
		// "grpc: the client connection is closing": the store closed the
		// client under the call. A cancelled context is handled before.
		return kindUnavailable
	case codes.NotFound:
		return kindNotFound
	case codes.Unauthenticated, codes.PermissionDenied:
		return kindDenied
	case codes.Unimplemented:
		return kindUnsupported
	case codes.FailedPrecondition:
		if strings.Contains(msg, "is deleted") {
			return kindDeleted
		}
	case codes.InvalidArgument:
		switch {
		case strings.Contains(msg, "invalid position"):
			// "Trying to read from an invalid position."
			return kindBadPosition
		case strings.Contains(msg, "size"):
			// "Maximum Append Size of N Exceeded." and "Event with Id:
			// ..., Size: ..., exceeds Maximum Append Event Size of N."
			return kindTooLarge
		}
	}
	return kindOther
}

// unwrapStatus returns the first error in err's chain that carries a gRPC
// status, or err.
func unwrapStatus(err error) error {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if _, ok := e.(interface{ GRPCStatus() *status.Status }); ok {
			return e
		}
	}
	return err
}

// mapError wraps a client error with what failed. When ctx is done it
// returns ctx's error instead (the client reports a cancelled call as a
// gRPC status that does not match context.Canceled). An error that
// already carries a domain code (the store's own) is only wrapped.
// Otherwise it adds a *domain.Error by what the caller can do:
//
//   - unavailable, for failures a retry may cure: the server or the
//     connection is down or busy, or the store is reconnecting;
//   - too_large, for an append over the server's size limits;
//   - not_found, for a deleted stream;
//   - invalid, for a $all position the server does not know;
//   - unavailable, for what only an operator can fix: refused
//     credentials or rights, a server without the API. A chatd client is
//     not to blame for them, so they are not unauthorized or forbidden.
//
// The last three also match domain.ErrPermanent. The client's error stays
// in the chain for errors.As.
func mapError(ctx context.Context, err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("kurrentdb: %s: %w", what, cerr)
	}
	if domain.ErrorCode(err) != domain.EINTERNAL {
		return fmt.Errorf("kurrentdb: %s: %w", what, err)
	}
	coded := func(code, msg string) error {
		return fmt.Errorf("kurrentdb: %s: %w: %w", what, domain.Errorf(code, "%s", msg), err)
	}
	switch classify(err) {
	case kindUnavailable, kindNotLeader:
		return coded(domain.EUNAVAILABLE, "the event store is unavailable; try again later")
	case kindClosed:
		return coded(domain.EUNAVAILABLE, "the event store connection was lost; reconnecting")
	case kindTooLarge:
		return coded(domain.ETOOLARGE, "the events are larger than the event store accepts in one append")
	case kindDenied:
		return domain.Permanent(fmt.Errorf("kurrentdb: %s: the server refused the credentials of PARLEY_KURRENTDB_URL, "+
			"or its user lacks rights (it needs read access to $all, admins only by default, and read and write access to the room streams): %w: %w",
			what, domain.Errorf(domain.EUNAVAILABLE, "the event store refused this server's credentials; an operator must fix them"), err))
	case kindDeleted:
		return domain.Permanent(coded(domain.ENOTFOUND, "the stream is deleted"))
	case kindBadPosition:
		return domain.Permanent(fmt.Errorf("kurrentdb: %s: the position is not one of this event store's "+
			"(a checkpoint taken on another store? rebuild the projection): %w: %w",
			what, domain.Errorf(domain.EINVALID, "the log position is not valid on this event store"), err))
	case kindUnsupported:
		return domain.Permanent(fmt.Errorf("kurrentdb: %s: the server does not support this API (KurrentDB 22.6 or later is needed): %w: %w",
			what, domain.Errorf(domain.EUNAVAILABLE, "the event store server is too old; an operator must upgrade it"), err))
	}
	return fmt.Errorf("kurrentdb: %s: %w", what, err)
}

// permanent reports whether a subscription that failed with err should
// give up instead of resubscribing: no retry can cure err, or the store
// is closed.
func permanent(err error) bool {
	if errors.Is(err, domain.ErrPermanent) {
		return true
	}
	switch classify(err) {
	case kindDenied, kindDeleted, kindBadPosition, kindUnsupported:
		return true
	}
	return false
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
