// Package domaintest holds the contract suite every domain.EventStore
// implementation must pass, and small fixtures for tests of other packages.
// Like domain, it imports the standard library only.
package domaintest
