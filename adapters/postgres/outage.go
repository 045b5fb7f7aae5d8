package postgres

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/parleychat/parley/domain"
)

// outageError marks a failure to reach PostgreSQL, or PostgreSQL shutting
// down or starting up: the database is unavailable, not the request wrong.
// Its code is domain.EUNAVAILABLE, which transports answer with 503 and
// WebSocket close 1013 ("try again later"); its text is the driver's, for
// logs.
type outageError struct{ err error }

func (e outageError) Error() string     { return e.err.Error() }
func (e outageError) Unwrap() error     { return e.err }
func (e outageError) ErrorCode() string { return domain.EUNAVAILABLE }

// markOutage wraps *errp in an outageError when it is an outage (see
// isOutage). The exported methods that talk to the database defer it.
func markOutage(errp *error) {
	if *errp != nil && isOutage(*errp) {
		*errp = outageError{*errp}
	}
}

// isOutage reports whether err says that the database could not be
// reached or is not serving: refused, reset or dropped connections, a
// server shutting down or starting up, no free connection slot, or no
// answer before the caller's deadline.
func isOutage(err error) bool {
	var (
		pe *pgconn.PgError
		ce *pgconn.ConnectError
		ne net.Error
		oe outageError
	)
	switch {
	case errors.As(err, &oe):
		return false // marked already
	case errors.As(err, &pe):
		return strings.HasPrefix(pe.Code, "08") || // connection exception
			pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03" || // admin or crash shutdown, cannot connect now
			pe.Code == "53300" // too many connections
	case errors.As(err, &ce), errors.As(err, &ne),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, context.DeadlineExceeded):
		return true
	}
	return pgconn.SafeToRetry(err) || strings.Contains(err.Error(), "conn closed")
}
