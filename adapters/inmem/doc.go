// Package inmem is an in-memory domain.EventStore for fast unit tests of
// other packages. It honours the whole EventStore contract (the shared
// suite in domain/domaintest runs against it) but keeps nothing on disk.
package inmem
