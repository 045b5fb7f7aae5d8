package privacy_test

import (
	"testing"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/domaintest"
)

func domaintestRun(t *testing.T, f func(*testing.T) domain.EventStore) {
	domaintest.RunEventStoreTests(t, f)
}
