package main

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestOpenEventStoreChoosesKurrentDBWhenItsURLIsSet(t *testing.T) {
	_, _, _, err := openEventStore(t.Context(), env(map[string]string{"PARLEY_KURRENTDB_URL": "not a connection string"}), nil)
	if err == nil || !strings.Contains(err.Error(), "KurrentDB") || !strings.Contains(err.Error(), "PARLEY_KURRENTDB_URL") {
		t.Errorf("error %v, want one about the KurrentDB store named by PARLEY_KURRENTDB_URL", err)
	}
}

// TestReplayOnKurrentDB replays the fixed conversation from a real
// KurrentDB server.
func TestReplayOnKurrentDB(t *testing.T) {
	url := os.Getenv("PARLEY_KURRENTDB_URL")
	if url == "" {
		t.Skip("SKIP: replay on KurrentDB not run; set PARLEY_KURRENTDB_URL to run it")
	}
	getenv := env(map[string]string{"PARLEY_KURRENTDB_URL": url, "PARLEY_OPERATOR": "kurrent-test"})
	store, _, closeStore, err := openEventStore(t.Context(), getenv, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore()
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
