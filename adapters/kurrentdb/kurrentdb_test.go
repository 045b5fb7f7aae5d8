package kurrentdb_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/parleychat/parley/adapters/kurrentdb"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/domaintest"
)

// TestContract runs the shared EventStore contract against the KurrentDB
// server at PARLEY_KURRENTDB_URL (esdb://localhost:2113?tls=false, say).
// Subtests use their own stream-name prefixes, so they share one store.
// The server must accept a domain.MaxEventSize event in one append: start
// it with KURRENTDB_MAX_APPEND_SIZE=2097152 or more.
func TestContract(t *testing.T) {
	s := dialOrSkip(t)
	domaintest.RunEventStoreTests(t, func(t *testing.T) domain.EventStore { return s })
}

// dialOrSkip dials PARLEY_KURRENTDB_URL, or skips visibly when it is
// unset. The store is closed in a cleanup, which runs after those the
// test registers later (last in, first out): every subscription the test
// started has returned by then.
func dialOrSkip(t *testing.T) *kurrentdb.Store {
	t.Helper()
	url := os.Getenv("PARLEY_KURRENTDB_URL")
	if url == "" {
		msg := "SKIP: PARLEY_KURRENTDB_URL not set; KurrentDB test " + t.Name() + " not run"
		fmt.Println(msg)
		t.Skip(msg)
	}
	s, err := kurrentdb.Dial(t.Context(), url, kurrentdb.Options{})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}
