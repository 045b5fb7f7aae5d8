package domain

import (
	"errors"
	"fmt"
	"time"
)

// Error codes are the closed set of failure kinds Parley reports at its
// edges. Transports map them to HTTP statuses and WebSocket close codes.
const (
	ECONFLICT     = "conflict"     // a concurrency expectation failed
	EINTERNAL     = "internal"     // a bug or an unexpected failure
	EINVALID      = "invalid"      // the caller sent bad input
	ENOTFOUND     = "not_found"    // the thing does not exist
	EUNAVAILABLE  = "unavailable"  // a dependency is down; try again later
	EUNAUTHORIZED = "unauthorized" // missing or bad credentials
	EFORBIDDEN    = "forbidden"    // authenticated, but not allowed
	ETOOLARGE     = "too_large"    // input over a size limit
	ERATELIMITED  = "rate_limited" // too many requests
	EBUSY         = "busy"         // the resource is busy with other work
)

// Error is an application error with a code from the closed set above and a
// message that is safe to show to a client.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first coded error in err's chain, or
// EINTERNAL for any other non-nil error and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var c interface{ ErrorCode() string }
	if errors.As(err, &c) {
		return c.ErrorCode()
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the client-safe message of the first *Error in
// err's chain. Other errors, the typed ones of this package included, carry
// internal text (stream names, versions, driver messages), so for them it
// returns the generic text of their code (see CodeMessage).
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return CodeMessage(ErrorCode(err))
}

// CodeMessage is the generic client-safe text of an error code, for errors
// whose own text is not meant for clients.
func CodeMessage(code string) string {
	switch code {
	case ECONFLICT:
		return "a concurrent change came first; try again"
	case EINVALID:
		return "invalid input"
	case ENOTFOUND:
		return "not found"
	case EUNAVAILABLE:
		return "a service this needs is unavailable; try again later"
	case EUNAUTHORIZED:
		return "not authenticated"
	case EFORBIDDEN:
		return "not allowed"
	case ETOOLARGE:
		return "input too large"
	case ERATELIMITED:
		return "too many requests; slow down"
	case EBUSY:
		return "busy; try again later"
	}
	return "internal error"
}

// Sentinel errors for errors.Is. The typed errors below match them.
var (
	// ErrConflict matches every *ConflictError.
	ErrConflict = errors.New("wrong expected version")
	// ErrStreamNotFound matches every *StreamNotFoundError.
	ErrStreamNotFound = errors.New("stream not found")
	// ErrInvalidEvent matches every *InvalidEventError.
	ErrInvalidEvent = errors.New("invalid event")
	// ErrPermanent matches failures no retry can cure: a log position the
	// store does not know, a deleted stream, credentials or rights the
	// server refuses, a server without a needed feature. Subscribers and
	// projection runners stop on them, with the error, instead of retrying
	// forever. Mark such errors with Permanent.
	ErrPermanent = errors.New("permanent failure")
	// ErrStoreRestarted ends a subscription whose store restarted in a way
	// that may have lost its newest events (PostgreSQL after a crash, when
	// some commits were not flushed): events the subscriber was handed may
	// be gone, and their versions and positions reused. The subscriber
	// starts again from a position the store itself keeps (a checkpoint
	// written with the store's own durability) or from the new head.
	ErrStoreRestarted = errors.New("the event store restarted and may have lost its newest events")
)

// Permanent marks err as a failure no retry can cure: errors.Is(err,
// ErrPermanent) reports true, while its text, code and chain stay err's.
// Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

type permanentError struct{ err error }

func (e permanentError) Error() string        { return e.err.Error() }
func (e permanentError) Unwrap() error        { return e.err }
func (e permanentError) Is(target error) bool { return target == ErrPermanent }

// ConflictError reports an append whose expected version did not hold, or a
// retried append whose event IDs only partly match what is stored.
type ConflictError struct {
	Stream   string
	Expected ExpectedVersion
	// Actual is the stream's current version, NoVersion when it does not exist.
	Actual int64
	// Reason explains conflicts that are not a plain version mismatch.
	Reason string
}

func (e *ConflictError) Error() string {
	actual := "no stream"
	if e.Actual != NoVersion {
		actual = fmt.Sprintf("version %d", e.Actual)
	}
	msg := fmt.Sprintf("append to %s: wrong expected version: expected %s, stream is at %s", e.Stream, e.Expected, actual)
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	return msg
}

// Is reports whether target is ErrConflict.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// ErrorCode returns ECONFLICT.
func (e *ConflictError) ErrorCode() string { return ECONFLICT }

// StreamNotFoundError reports a read of a stream that has no events.
type StreamNotFoundError struct{ Stream string }

func (e *StreamNotFoundError) Error() string { return fmt.Sprintf("stream %s not found", e.Stream) }

// Is reports whether target is ErrStreamNotFound.
func (e *StreamNotFoundError) Is(target error) bool { return target == ErrStreamNotFound }

// ErrorCode returns ENOTFOUND.
func (e *StreamNotFoundError) ErrorCode() string { return ENOTFOUND }

// InvalidEventError reports input rejected before anything was written.
type InvalidEventError struct {
	Stream string
	// Index is the position of the offending event in the append, or -1 when
	// the problem is not with one event (the stream name, say).
	Index  int
	Field  string
	Reason string
}

func (e *InvalidEventError) Error() string {
	if e.Index < 0 {
		return fmt.Sprintf("invalid %s %q: %s", e.Field, e.Stream, e.Reason)
	}
	return fmt.Sprintf("append to %s: event %d: invalid %s: %s", e.Stream, e.Index, e.Field, e.Reason)
}

// Is reports whether target is ErrInvalidEvent.
func (e *InvalidEventError) Is(target error) bool { return target == ErrInvalidEvent }

// ErrorCode returns EINVALID, or ETOOLARGE for size violations.
func (e *InvalidEventError) ErrorCode() string {
	if e.Field == "size" {
		return ETOOLARGE
	}
	return EINVALID
}

// WithRetryAfter attaches to err how long the failing dependency asks
// callers to wait before retrying (a rate limit's Retry-After, say);
// RetryAfter reads it back. Its text, code and chain stay err's.
func WithRetryAfter(err error, wait time.Duration) error {
	if err == nil {
		return nil
	}
	return retryAfterError{err, wait}
}

// RetryAfter returns the wait attached to the first error in err's chain
// that carries one, or zero.
func RetryAfter(err error) time.Duration {
	var r interface{ RetryAfter() time.Duration }
	if errors.As(err, &r) {
		return r.RetryAfter()
	}
	return 0
}

type retryAfterError struct {
	err  error
	wait time.Duration
}

func (e retryAfterError) Error() string             { return e.err.Error() }
func (e retryAfterError) Unwrap() error             { return e.err }
func (e retryAfterError) RetryAfter() time.Duration { return e.wait }
