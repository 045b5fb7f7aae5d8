package inmem_test

import (
	"testing"

	"github.com/parleychat/parley/adapters/inmem"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/domaintest"
)

func TestContract(t *testing.T) {
	domaintest.RunEventStoreTests(t, func(t *testing.T) domain.EventStore { return inmem.New(nil) })
}
