// Package storeenv reads from the environment which event store holds
// Parley's log. chatd and chatctl both use it, so that chatctl's replay,
// export and audit read (and record their reads in) the store chatd
// writes, never another one that happens to be configured.
//
//	PARLEY_EVENT_STORE    postgres (default) or kurrentdb
//	PARLEY_KURRENTDB_URL  KurrentDB's connection string, needed by kurrentdb
//	                      (e.g. esdb://127.0.0.1:2113?tls=false); it is not
//	                      read unless PARLEY_EVENT_STORE=kurrentdb
//	PARLEY_KURRENTDB_MAX_APPEND_SIZE, PARLEY_KURRENTDB_MAX_APPEND_EVENT_SIZE
//	                      the server's KURRENTDB_MAX_APPEND_SIZE and
//	                      KURRENTDB_MAX_APPEND_EVENT_SIZE, in bytes
//	                      (defaults 268435456 and 16777216, KurrentDB's)
//
// Postgres's URL is PARLEY_DATABASE_URL, which each binary reads with its
// other uses of the database.
package storeenv

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/parleychat/parley/adapters/kurrentdb"
)

// Event store names PARLEY_EVENT_STORE accepts.
const (
	Postgres  = "postgres"
	KurrentDB = "kurrentdb"
)

// The most KurrentDB accepts for its size limits, and the rule between
// them, as its ClusterVNodeOptionsValidator checks them at start.
const (
	maxAppendSizeLimit      = kurrentdb.DefaultMaxAppendSize      // TFConsts.ChunkSize
	maxAppendEventSizeLimit = kurrentdb.DefaultMaxAppendEventSize // TFConsts.MaxLogRecordSize
)

// Config names the event store.
type Config struct {
	Kind         string // Postgres or KurrentDB
	KurrentDBURL string // set when Kind is KurrentDB; may hold a password, never logged
	// MaxAppendSize and MaxAppendEventSize are the KurrentDB server's
	// limits (set when Kind is KurrentDB).
	MaxAppendSize, MaxAppendEventSize int
}

// KurrentDBOptions returns the KurrentDB store's options for c, logging
// to log.
func (c Config) KurrentDBOptions(log *slog.Logger) kurrentdb.Options {
	return kurrentdb.Options{Logger: log, MaxAppendSize: c.MaxAppendSize, MaxAppendEventSize: c.MaxAppendEventSize}
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
		var err error
		if c.MaxAppendSize, err = size(getenv, "PARLEY_KURRENTDB_MAX_APPEND_SIZE", maxAppendSizeLimit); err != nil {
			return Config{}, err
		}
		if c.MaxAppendEventSize, err = size(getenv, "PARLEY_KURRENTDB_MAX_APPEND_EVENT_SIZE", maxAppendEventSizeLimit); err != nil {
			return Config{}, err
		}
		if c.MaxAppendEventSize > c.MaxAppendSize {
			return Config{}, fmt.Errorf("PARLEY_KURRENTDB_MAX_APPEND_EVENT_SIZE (%d) must not exceed PARLEY_KURRENTDB_MAX_APPEND_SIZE (%d), as KurrentDB requires of its own settings",
				c.MaxAppendEventSize, c.MaxAppendSize)
		}
	default:
		return Config{}, fmt.Errorf("PARLEY_EVENT_STORE=%q: want postgres or kurrentdb", c.Kind)
	}
	return c, nil
}

// size reads a byte count from the variable name: between 1 and limit,
// limit when unset.
func size(getenv func(string) string, name string, limit int) (int, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return limit, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > limit {
		return 0, fmt.Errorf("%s=%q must be a number of bytes from 1 to %d (KurrentDB's most), matching the server's setting", name, v, limit)
	}
	return n, nil
}
