package domaintest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/domain"
)

// UniquePrefix returns a stream-name prefix no other test uses, so tests
// can share one store (a KurrentDB server, say) without seeing each other.
func UniquePrefix(t testing.TB) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("random prefix: %v", err)
	}
	return "t" + hex.EncodeToString(b[:]) + "-"
}

// NewID returns a random event ID.
func NewID(t testing.TB) domain.UUID {
	t.Helper()
	id, err := domain.NewUUID(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// Events returns n events of type typ with random IDs and small JSON data
// {"n": i} and standard metadata.
func Events(t testing.TB, typ string, n int) []domain.EventData {
	t.Helper()
	out := make([]domain.EventData, n)
	meta, err := json.Marshal(domain.Metadata{CorrelationID: "corr-1", UserID: "42", OccurredAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range out {
		out[i] = domain.EventData{
			ID:       NewID(t),
			Type:     typ,
			Data:     json.RawMessage(fmt.Sprintf(`{"n":%d}`, i)),
			Metadata: meta,
		}
	}
	return out
}

// SizedEvent returns an event whose Size is exactly size bytes (at least 64).
func SizedEvent(t testing.TB, size int) domain.EventData {
	t.Helper()
	const typ = "Sized"
	meta := json.RawMessage(`{}`)
	pad := size - len(typ) - len(meta) - len(`{"p":""}`)
	if pad < 0 {
		t.Fatalf("SizedEvent: size %d too small", size)
	}
	data := json.RawMessage(`{"p":"` + strings.Repeat("x", pad) + `"}`)
	ev := domain.EventData{ID: NewID(t), Type: typ, Data: data, Metadata: meta}
	if ev.Size() != size {
		t.Fatalf("SizedEvent: built %d bytes, want %d", ev.Size(), size)
	}
	return ev
}
