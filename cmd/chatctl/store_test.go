package main

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/parleychat/parley/domain/audit"
)

// TestOpenEventStoreChoosesAsChatdDoes checks that chatctl opens the
// store chatd would: KurrentDB only with PARLEY_EVENT_STORE=kurrentdb, so
// that a PARLEY_KURRENTDB_URL left in the environment cannot send replay,
// export or audit to another store than chatd's. Neither store is up at
// these URLs, so the error tells which one was tried.
func TestOpenEventStoreChoosesAsChatdDoes(t *testing.T) {
	const noPostgres = "postgres://parley:parley@127.0.0.1:1/parley?sslmode=disable&connect_timeout=2"
	for _, tt := range []struct {
		name string
		env  map[string]string
		want string // part of the error
	}{
		{"a KurrentDB URL alone", map[string]string{"PARLEY_KURRENTDB_URL": "not a connection string", "PARLEY_DATABASE_URL": noPostgres}, "open the Postgres event store"},
		{"kurrentdb", map[string]string{"PARLEY_EVENT_STORE": "kurrentdb", "PARLEY_KURRENTDB_URL": "not a connection string", "PARLEY_DATABASE_URL": noPostgres}, "open the KurrentDB event store"},
		{"kurrentdb without its URL", map[string]string{"PARLEY_EVENT_STORE": "kurrentdb", "PARLEY_DATABASE_URL": noPostgres}, "needs PARLEY_KURRENTDB_URL"},
		{"an unknown store", map[string]string{"PARLEY_EVENT_STORE": "mysql", "PARLEY_DATABASE_URL": noPostgres}, "want postgres or kurrentdb"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := openEventStore(t.Context(), env(tt.env), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// TestReplayOnKurrentDB replays the fixed conversation from a real
// KurrentDB server.
func TestReplayOnKurrentDB(t *testing.T) {
	url := os.Getenv("PARLEY_KURRENTDB_URL")
	if url == "" {
		t.Skip("SKIP: replay on KurrentDB not run; set PARLEY_KURRENTDB_URL to run it")
	}
	getenv := env(map[string]string{"PARLEY_EVENT_STORE": "kurrentdb", "PARLEY_KURRENTDB_URL": url, "PARLEY_OPERATOR": "kurrent-test"})
	raw, closeStore, err := openEventStore(t.Context(), getenv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore()
	store := audit.NewChainingStore(raw, audit.ChainOptions{})
	var b [8]byte
	rand.Read(b[:])
	id := int64(binary.BigEndian.Uint64(b[:])>>11) + 1
	writeConversation(t, store, nil, id)
	var out, stderr bytes.Buffer
	if err := run(t.Context(), []string{"replay", "--room", strconv.FormatInt(id, 10), "--format", "jsonl"}, getenv, nil, &out, &stderr); err != nil {
		t.Fatalf("replay: %v\n%s", err, stderr.String())
	}
	if n := strings.Count(out.String(), "\n"); n != conversationEvents() {
		t.Errorf("replayed %d events, want %d", n, conversationEvents())
	}
}
