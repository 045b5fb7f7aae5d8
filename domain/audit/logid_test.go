package audit_test

import (
	"context"
	"testing"

	"github.com/parleychat/parley/adapters/inmem"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/audit"
)

// namedStore is a store that names its log.
type namedStore struct{ domain.EventStore }

func (namedStore) LogID(context.Context) (string, error) { return "postgres:1/2", nil }

// TestChainingStorePassesTheLogOn: the chain changes nothing about which
// log the events are in, so a projection runner over chatd's chaining
// store still checks its checkpoint's log.
func TestChainingStorePassesTheLogOn(t *testing.T) {
	for _, tc := range []struct {
		inner domain.EventStore
		want  string
	}{
		{namedStore{inmem.New(nil)}, "postgres:1/2"},
		{inmem.New(nil), ""},
	} {
		if got, err := audit.NewChainingStore(tc.inner, audit.ChainOptions{}).LogID(t.Context()); err != nil || got != tc.want {
			t.Errorf("LogID over %T = %q, %v; want %q", tc.inner, got, err, tc.want)
		}
	}
}
