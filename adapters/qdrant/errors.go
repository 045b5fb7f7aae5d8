package qdrant

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	qc "github.com/qdrant/go-client/qdrant"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/parleychat/parley/domain"
)

// fail wraps a client error with what was being done and, by what the
// caller can do about it, a *domain.Error whose message is safe to show
// clients; the client's error stays in the chain for logs and errors.As:
//
//   - unavailable: the server is down, slow or out of resources, or the
//     index is closed: a later retry may work;
//   - rate_limited: the server's strict mode refuses the rate; the error
//     carries its Retry-After (domain.RetryAfter);
//   - too_large: a response over what points of MaxPayloadBytes need (a
//     point written by something else than Parley, with a larger payload);
//   - invalid: the server refused the request itself (bad input);
//   - unavailable and domain.ErrPermanent: what only an operator can fix:
//     a refused API key, a collection deleted under the index, a server
//     without the API. A chatd client is not to blame for them, so they
//     are not unauthorized or not_found.
func (x *Index) fail(what string, err error) error {
	wrap := func(code, format string, args ...any) error {
		return fmt.Errorf("qdrant %s: %s: %w: %w", x.cfg.Collection, what, domain.Errorf(code, format, args...), err)
	}
	st, _ := status.FromError(unwrapStatus(err))
	var exhausted *qc.QdrantResourceExhaustedError
	switch {
	case errors.Is(err, errClosed), x.closing != nil && x.closing.Err() != nil:
		return wrap(domain.EUNAVAILABLE, "the vector index is closed")
	case errors.As(err, &exhausted):
		wait := time.Duration(exhausted.RetryAfterS) * time.Second
		return domain.WithRetryAfter(wrap(domain.ERATELIMITED, "the vector index is rate limiting requests; retry in %d s", exhausted.RetryAfterS), wait)
	case errors.Is(err, context.DeadlineExceeded):
		return wrap(domain.EUNAVAILABLE, "the vector index is unavailable; try again later")
	}
	switch st.Code() {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted:
		return wrap(domain.EUNAVAILABLE, "the vector index is unavailable; try again later")
	case codes.ResourceExhausted:
		if strings.Contains(st.Message(), "received message larger than max") {
			return wrap(domain.ETOOLARGE, "a vector index response is larger than points of %d bytes of payload need; its collection holds points Parley did not write", x.cfg.MaxPayloadBytes)
		}
		return wrap(domain.EUNAVAILABLE, "the vector index is out of resources; try again later")
	case codes.InvalidArgument, codes.OutOfRange:
		return wrap(domain.EINVALID, "the vector index rejected the request")
	case codes.FailedPrecondition:
		return wrap(domain.EUNAVAILABLE, "the vector index refuses the request in its current state (locked by an operator?)")
	case codes.NotFound:
		return domain.Permanent(wrap(domain.EUNAVAILABLE, "the vector index collection is gone; an operator must ingest the documents again"))
	case codes.Unauthenticated, codes.PermissionDenied:
		return domain.Permanent(wrap(domain.EUNAVAILABLE, "the vector index refused this server's API key; an operator must fix PARLEY_QDRANT_API_KEY"))
	case codes.Unimplemented:
		return domain.Permanent(wrap(domain.EUNAVAILABLE, "the vector index server lacks this API; an operator must upgrade it"))
	}
	return fmt.Errorf("qdrant %s: %s: %w", x.cfg.Collection, what, err)
}

// unwrapStatus returns the innermost error that carries a gRPC status.
func unwrapStatus(err error) error {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if _, ok := status.FromError(e); ok {
			return e
		}
	}
	return err
}
