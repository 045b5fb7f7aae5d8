// Package storeenv reads from the environment which event store holds
// Parley's log. chatd and chatctl both use it, so that chatctl's replay,
// export and audit read (and record their reads in) the store chatd
// writes, never another one that happens to be configured.
//
//	PARLEY_EVENT_STORE    postgres (default) or kurrentdb
//	PARLEY_KURRENTDB_URL  KurrentDB's connection string, needed by kurrentdb
//	                      (e.g. esdb://127.0.0.1:2113?tls=false); it is not
//	                      read unless PARLEY_EVENT_STORE=kurrentdb
//
// Postgres's URL is PARLEY_DATABASE_URL, which each binary reads with its
// other uses of the database.
package storeenv

import (
	"errors"
	"fmt"
	"strings"
)

// Event store names PARLEY_EVENT_STORE accepts.
const (
	Postgres  = "postgres"
	KurrentDB = "kurrentdb"
)

// Config names the event store.
type Config struct {
	Kind         string // Postgres or KurrentDB
	KurrentDBURL string // set when Kind is KurrentDB; may hold a password, never logged
}

// FromEnv reads the event store's settings and reports what is wrong with
// them.
func FromEnv(getenv func(string) string) (Config, error) {
	c := Config{Kind: strings.ToLower(strings.TrimSpace(getenv("PARLEY_EVENT_STORE")))}
	switch c.Kind {
	case "", Postgres:
		c.Kind = Postgres
	case KurrentDB:
		c.KurrentDBURL = strings.TrimSpace(getenv("PARLEY_KURRENTDB_URL"))
		if c.KurrentDBURL == "" {
			return Config{}, errors.New("PARLEY_EVENT_STORE=kurrentdb needs PARLEY_KURRENTDB_URL (e.g. esdb://127.0.0.1:2113?tls=false)")
		}
	default:
		return Config{}, fmt.Errorf("PARLEY_EVENT_STORE=%q: want postgres or kurrentdb", c.Kind)
	}
	return c, nil
}
