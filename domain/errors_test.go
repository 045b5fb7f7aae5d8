package domain_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/domain"
)

func TestPermanent(t *testing.T) {
	if domain.Permanent(nil) != nil {
		t.Error("Permanent(nil) is not nil")
	}
	base := domain.Errorf(domain.EINVALID, "bad position")
	err := fmt.Errorf("subscribe: %w", domain.Permanent(base))
	if !errors.Is(err, domain.ErrPermanent) {
		t.Errorf("%v does not match ErrPermanent", err)
	}
	if got := err.Error(); got != "subscribe: invalid: bad position" {
		t.Errorf("text = %q, want the wrapped error's", got)
	}
	if domain.ErrorCode(err) != domain.EINVALID || domain.ErrorMessage(err) != "bad position" {
		t.Errorf("code %q, message %q; want the wrapped error's", domain.ErrorCode(err), domain.ErrorMessage(err))
	}
	if errors.Is(base, domain.ErrPermanent) {
		t.Error("an unmarked error matches ErrPermanent")
	}
}

func TestRetryAfter(t *testing.T) {
	if domain.WithRetryAfter(nil, time.Second) != nil {
		t.Error("WithRetryAfter(nil) is not nil")
	}
	base := domain.Errorf(domain.ERATELIMITED, "slow down")
	err := fmt.Errorf("search: %w", domain.WithRetryAfter(base, 3*time.Second))
	if got := domain.RetryAfter(err); got != 3*time.Second {
		t.Errorf("RetryAfter = %v, want 3s", got)
	}
	if domain.ErrorCode(err) != domain.ERATELIMITED || err.Error() != "search: rate_limited: slow down" {
		t.Errorf("code %q, text %q; want the wrapped error's", domain.ErrorCode(err), err)
	}
	if got := domain.RetryAfter(base); got != 0 {
		t.Errorf("RetryAfter of an error without one = %v", got)
	}
}

// TestErrorMessageNeverLeaksInternalText: the typed errors of the store
// name streams, versions and reasons meant for logs; a client sees only
// the generic text of their code.
func TestErrorMessageNeverLeaksInternalText(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"coded error", fmt.Errorf("create room: %w", domain.Errorf(domain.EINVALID, "title must not be empty")), "title must not be empty"},
		{"invalid event", fmt.Errorf("room 5: append RoomCreated: %w", &domain.InvalidEventError{Stream: "room-5", Index: 0, Field: "data", Reason: "contains NUL"}), domain.CodeMessage(domain.EINVALID)},
		{"event too large", &domain.InvalidEventError{Stream: "room-5", Index: 0, Field: "size", Reason: "over 1 MiB"}, domain.CodeMessage(domain.ETOOLARGE)},
		{"conflict", fmt.Errorf("room 5: %w", &domain.ConflictError{Stream: "room-5", Expected: domain.Exact(3), Actual: 4}), domain.CodeMessage(domain.ECONFLICT)},
		{"stream not found", &domain.StreamNotFoundError{Stream: "room-5"}, domain.CodeMessage(domain.ENOTFOUND)},
		{"plain error", fmt.Errorf("postgres: read room-5: connection refused"), "internal error"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := domain.ErrorMessage(tc.err)
			if got != tc.want {
				t.Errorf("ErrorMessage = %q, want %q", got, tc.want)
			}
			if strings.Contains(got, "room-") || strings.Contains(got, "append") {
				t.Errorf("ErrorMessage %q leaks internal text", got)
			}
		})
	}
}
