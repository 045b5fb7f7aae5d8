package kurrentdb

import (
	"testing"

	"github.com/parleychat/parley/adapters/kurrentdb/kurrentdbtest"
)

// startFakeServer serves a kurrentdbtest.Server whose MaxAppendSize is
// maxAppendSize until the test ends.
func startFakeServer(t *testing.T, maxAppendSize int) (*kurrentdbtest.Server, string) {
	t.Helper()
	return kurrentdbtest.Start(t, maxAppendSize)
}

// fakeStoreOver returns a store dialled to url. Its cleanup runs before
// the server's, after those of anything the test starts later.
func fakeStoreOver(t *testing.T, url string, opts Options) *Store {
	t.Helper()
	s, err := Dial(t.Context(), url, opts)
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
