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
package postgres
