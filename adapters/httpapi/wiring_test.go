package httpapi_test

import (
	"github.com/parleychat/parley/adapters/httpapi"
	"github.com/parleychat/parley/adapters/postgres"
	"github.com/parleychat/parley/adapters/prom"
	"github.com/parleychat/parley/domain/chat"
)

// The implementations cmd/chatd wires in satisfy the interfaces declared
// here.
var (
	_ httpapi.Rooms        = (*chat.Service)(nil)
	_ httpapi.TicketIssuer = (*postgres.Tickets)(nil)
	_ httpapi.Metrics      = (*prom.Metrics)(nil)
)
