package domain_test

import (
	"errors"
	"fmt"
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
