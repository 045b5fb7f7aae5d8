// Package postgres implements Parley's Postgres adapters over pgx v5: the
// event store (domain.EventStore) and the schema migrations embedded from
// the migrations package.
//
// The event store's global order is (writer transaction id, sequence), and
// readers of the global log stop below the oldest transaction not proven
// harmless, one that might still commit events (see visibleBoundSQL), so a
// slow writer that commits late is never skipped. LISTEN/NOTIFY is only a
// wake-up hint: subscriptions poll behind it, and a dropped listener loses
// nothing.
//
// A server that cannot be reached, or is shutting down or starting up, is
// an error with code domain.EUNAVAILABLE (outage.go). A subscription ends
// with domain.ErrStoreRestarted when the server has restarted since it
// began: after a crash with asynchronous commits, positions and versions
// of what was lost are reused, so its subscriber starts again from a
// position the database itself kept.
package postgres
