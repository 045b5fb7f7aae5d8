package kurrentdb

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/parleychat/parley/domain"
)

func TestExpectedRevision(t *testing.T) {
	tests := []struct {
		in   domain.ExpectedVersion
		want esdb.ExpectedRevision
	}{
		{domain.Any(), esdb.Any{}},
		{domain.NoStream(), esdb.NoStream{}},
		{domain.StreamExists(), esdb.StreamExists{}},
		{domain.Exact(0), esdb.Revision(0)},
		{domain.Exact(41), esdb.Revision(41)},
		{domain.Exact(domain.NoVersion), esdb.NoStream{}},
	}
	for _, tc := range tests {
		got := expectedRevision(tc.in)
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("expectedRevision(%s) mismatch (-want +got):\n%s", tc.in, diff)
		}
	}
}

func TestUUIDConversion(t *testing.T) {
	const s = "0f8fad5b-d9cb-469f-a165-70867728950e"
	id := domain.MustParseUUID(s)
	ed := toEventData(domain.EventData{ID: id, Type: "T", Data: json.RawMessage(`{}`)})
	if got := ed.EventID.String(); got != s {
		t.Errorf("client event ID = %s, want %s", got, s)
	}
	// The client sends the ID as two big-endian halves; they must decode
	// to the same UUID.
	most, least := esdb.UUIDAsInt64(ed.EventID)
	back, err := esdb.ParseUUIDFromInt64(most, least)
	if err != nil {
		t.Fatal(err)
	}
	if domain.UUID(back) != id {
		t.Errorf("wire round trip = %s, want %s", domain.UUID(back), id)
	}
	rec := toRecorded(&esdb.RecordedEvent{EventID: uuid.MustParse(s)})
	if rec.ID != id {
		t.Errorf("recorded ID = %s, want %s", rec.ID, id)
	}
}

func TestToEventData(t *testing.T) {
	ev := domain.EventData{
		ID:       domain.MustParseUUID("6ba7b810-9dad-11d1-80b4-00c04fd430c8"),
		Type:     "MessagePosted",
		Data:     json.RawMessage(`{"body":"hi"}`),
		Metadata: json.RawMessage(`{"user_id":"42"}`),
	}
	got := toEventData(ev)
	want := esdb.EventData{
		EventID:     uuid.MustParse("6ba7b810-9dad-11d1-80b4-00c04fd430c8"),
		EventType:   "MessagePosted",
		ContentType: esdb.ContentTypeJson,
		Data:        []byte(`{"body":"hi"}`),
		Metadata:    []byte(`{"user_id":"42"}`),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("toEventData mismatch (-want +got):\n%s", diff)
	}
}

func TestToRecorded(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)
	r := &esdb.RecordedEvent{
		EventID:      uuid.MustParse("6ba7b810-9dad-11d1-80b4-00c04fd430c8"),
		EventType:    "MessagePosted",
		ContentType:  "application/json",
		StreamID:     "room-1",
		EventNumber:  7,
		Position:     esdb.Position{Commit: 900, Prepare: 800},
		CreatedDate:  at,
		Data:         []byte(`{"n":1}`),
		UserMetadata: []byte(`{"user_id":"42"}`),
	}
	want := domain.RecordedEvent{
		ID:         domain.MustParseUUID("6ba7b810-9dad-11d1-80b4-00c04fd430c8"),
		Type:       "MessagePosted",
		Data:       json.RawMessage(`{"n":1}`),
		Metadata:   json.RawMessage(`{"user_id":"42"}`),
		Stream:     "room-1",
		Version:    7,
		Position:   domain.Position{Commit: 900, Prepare: 800},
		RecordedAt: at,
	}
	if diff := cmp.Diff(want, toRecorded(r)); diff != "" {
		t.Errorf("toRecorded mismatch (-want +got):\n%s", diff)
	}
	// The client returns absent metadata as an empty slice.
	r.UserMetadata = []byte{}
	if got := toRecorded(r).Metadata; got != nil {
		t.Errorf("empty metadata = %q, want nil", got)
	}
}

func TestPositionMapping(t *testing.T) {
	p := domain.Position{Commit: 1 << 40, Prepare: 12345}
	if got := toPosition(fromPosition(p)); got != p {
		t.Errorf("round trip of %v = %v", p, got)
	}
	if got := fromPosition(p); got != (esdb.Position{Commit: 1 << 40, Prepare: 12345}) {
		t.Errorf("fromPosition(%v) = %+v", p, got)
	}
}

func TestIsSystem(t *testing.T) {
	tests := []struct {
		stream, typ string
		want        bool
	}{
		{"room-1", "MessagePosted", false},
		{"$stats-127.0.0.1:2113", "$statsCollected", true},
		{"$$room-1", "$metadata", true},
		{"room-1", "$streamDeleted", true},
		{"$ce-room", "$>", true},
		{"", "", false},
	}
	for _, tc := range tests {
		if got := isSystem(&esdb.RecordedEvent{StreamID: tc.stream, EventType: tc.typ}); got != tc.want {
			t.Errorf("isSystem(%q, %q) = %v, want %v", tc.stream, tc.typ, got, tc.want)
		}
	}
}

func TestNewDefaults(t *testing.T) {
	s := mustNewStore(t, Options{})
	if s.maxAppendSize != DefaultMaxAppendSize || s.maxAppendEventSize != DefaultMaxAppendEventSize ||
		s.minDelay != DefaultMinRetryDelay || s.maxDelay != DefaultMaxRetryDelay || s.logger == nil {
		t.Errorf("newStore(nil, Options{}) = {max append %d, max event %d, delays %v..%v, logger %v}, want the documented defaults",
			s.maxAppendSize, s.maxAppendEventSize, s.minDelay, s.maxDelay, s.logger)
	}
	s = mustNewStore(t, Options{MaxAppendSize: 4096, MaxAppendEventSize: 1024, MinRetryDelay: time.Second, MaxRetryDelay: time.Millisecond})
	if s.maxAppendSize != 4096 || s.maxAppendEventSize != 1024 || s.minDelay != time.Second || s.maxDelay != time.Second {
		t.Errorf("newStore with a max delay below the min = {max append %d, max event %d, delays %v..%v}, want 4096, 1024, 1s..1s",
			s.maxAppendSize, s.maxAppendEventSize, s.minDelay, s.maxDelay)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// mustNewStore returns a store without a client, for tests that replace
// its subscribe calls.
func mustNewStore(t *testing.T, opts Options) *Store {
	t.Helper()
	s, err := newStore(nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}
