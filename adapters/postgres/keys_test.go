package postgres_test

import (
	"testing"

	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/adapters/postgres/pgtest"
	"github.com/parleychat/parley/domain/privacy/privacytest"
)

func TestKeys(t *testing.T) {
	privacytest.RunKeyStoreTests(t, func(t *testing.T) privacytest.Store {
		return postgres.NewKeys(pgtest.NewPool(t, 4))
	})
}
