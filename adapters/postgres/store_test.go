package postgres_test

import (
	"testing"

	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/adapters/postgres/pgtest"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/domaintest"
)

func newStore(t *testing.T) *postgres.Store {
	t.Helper()
	s := postgres.NewStore(pgtest.NewPool(t, 80), postgres.StoreConfig{})
	t.Cleanup(func() { s.Close() })
	return s
}

func TestContract(t *testing.T) {
	domaintest.RunEventStoreTests(t, func(t *testing.T) domain.EventStore { return newStore(t) })
}
