package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

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

// checkServer reads the server's start time. When it differs from the
// one seen before, the server has restarted (and, after a crash, may have
// lost its last unflushed commits): it starts a new epoch, which ends the
// subscriptions of earlier ones, and drops the complete mark, whose
// transaction ids may be reused. It reports whether it saw a restart.
func (s *Store) checkServer(ctx context.Context) (bool, error) {
	var started time.Time
	if err := s.pool.QueryRow(ctx, `SELECT pg_postmaster_start_time()`).Scan(&started); err != nil {
		return false, fmt.Errorf("postgres: read the server's start time: %w", err)
	}
	s.serverMu.Lock()
	defer s.serverMu.Unlock()
	if s.serverStart.IsZero() || s.serverStart.Equal(started) {
		s.serverStart = started
		return false, nil
	}
	s.serverStart = started
	s.complete.Store(0)
	s.epoch.Add(1)
	s.log.Warn("the database restarted; subscriptions start again from positions it kept", "started_at", started)
	s.broadcast()
	return true, nil
}
