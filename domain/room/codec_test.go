package room_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
)

func TestEncodeDecodeRoundTrip(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []room.Event{
		room.AuditAccessed{UserID: "auditor", Interface: room.InterfaceCLI, At: at},
		room.RoomCreated{RoomID: 7, OwnerID: "42", Title: "Housing"},
		room.RoomDeleted{RoomID: 7, DeletedBy: "42"},
		room.MessagePosted{MessageID: msg1, ClientID: "c1", UserID: "42", Text: "rent?"},
		room.AnswerStarted{AnswerID: ans1, QuestionID: msg1, Model: "m", Instance: "i"},
		room.AnswerChunk{AnswerID: ans1, Seq: 3, Delta: "plain "},
		room.AnswerChunk{AnswerID: ans1, Seq: 4, Delta: "needs \"escaping\"\n"},
		room.NewAnswerChunk(ans1, 5, []string{"several ", "deltas"}, []time.Time{at, at.Add(30 * time.Millisecond)}),
		room.AnswerCompleted{AnswerID: ans1, Text: "done", Sources: []room.Source{{Document: "d", ChunkID: "c", Score: 0.5, Snippet: "s"}}, Chunks: 5},
		room.AnswerFailed{AnswerID: ans1, Reason: room.ReasonTimeout, Text: "part"},
		room.AnswerCancelled{AnswerID: ans1, Reason: room.ReasonCancelled, By: "42", Text: "part"},
		room.RetrievalRecorded{AnswerID: ans1, Query: "rent?", Hits: []room.RetrievalHit{{ChunkID: "c", Source: "d", Score: 1}}, PromptHash: "ab"},
		room.SummaryUpdated{Summary: "s", CoversThroughVersion: 9, Tokens: 1, Summarizer: "extractive"},
	}
	for i, e := range tests {
		t.Run(fmt.Sprintf("%d-%s", i, e.EventType()), func(t *testing.T) {
			typ, data, err := room.Encode(e)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if typ != e.EventType() {
				t.Errorf("Encode's type = %q, want %q", typ, e.EventType())
			}
			got, err := room.Decode(domain.RecordedEvent{Type: typ, Data: data, Stream: room.Stream(7), Version: 3}, false)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if diff := cmp.Diff(e, got); diff != "" {
				t.Errorf("Decode(Encode(e)) (-want +got):\n%s", diff)
			}
		})
	}
}

// foreign is an Event room does not know.
type foreign struct{}

func (foreign) EventType() string { return "Foreign" }

func TestEncodeRefusesTypesDecodeDoesNotKnow(t *testing.T) {
	if _, _, err := room.Encode(foreign{}); err == nil || !strings.Contains(err.Error(), "Foreign") {
		t.Errorf("Encode(foreign) error = %v, want one naming the type", err)
	}
	if _, err := room.EncodeEvent(msg1, foreign{}, domain.Metadata{}); err == nil {
		t.Error("EncodeEvent(foreign) succeeded")
	}
}

func TestEncodeEvents(t *testing.T) {
	meta := domain.Metadata{CorrelationID: "corr", UserID: "42", OccurredAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	evs := []room.Event{room.MessagePosted{MessageID: msg1, UserID: "42", Text: "a"}, room.AnswerStarted{AnswerID: ans1, QuestionID: msg1}}
	got, err := room.EncodeEvents(evs, []domain.UUID{msg1, ans1}, meta)
	if err != nil {
		t.Fatal(err)
	}
	wantMeta := `{"correlation_id":"corr","user_id":"42","occurred_at":"2026-01-02T03:04:05Z"}`
	for i, ev := range got {
		if ev.ID != []domain.UUID{msg1, ans1}[i] || ev.Type != evs[i].EventType() || string(ev.Metadata) != wantMeta {
			t.Errorf("event %d = %s %s %s, want ID %d, type %s, metadata %s", i, ev.ID, ev.Type, ev.Metadata, i, evs[i].EventType(), wantMeta)
		}
		if err := domain.ValidateAppend("room-7", []domain.EventData{ev}); err != nil {
			t.Errorf("event %d: %v", i, err)
		}
	}
	if _, err := room.EncodeEvents(evs, []domain.UUID{msg1}, meta); err == nil {
		t.Error("EncodeEvents with fewer IDs than events succeeded")
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name     string
		ev       domain.RecordedEvent
		tolerate bool
		wantErr  string // "" for nil, nil
	}{
		{"unknown type", domain.RecordedEvent{Type: "Later", Data: []byte(`{}`), Stream: "room-7", Version: 4}, false, `room-7@4 (position 0/0): unknown event type "Later"`},
		{"unknown type tolerated", domain.RecordedEvent{Type: "Later", Data: []byte(`{}`), Stream: "room-7", Version: 4}, true, ""},
		{"bad data", domain.RecordedEvent{Type: room.TypeMessagePosted, Data: []byte(`{"text": 5}`), Stream: "room-7", Version: 5}, true, "decode MessagePosted room-7@5"},
		{"bad chunk", domain.RecordedEvent{Type: room.TypeAnswerChunk, Data: []byte(`{"seq": "x"}`), Stream: "room-7", Version: 6}, false, "decode AnswerChunk room-7@6"},
		{"chunk of the fast form failing its check", domain.RecordedEvent{Type: room.TypeAnswerChunk, Stream: "room-7", Version: 7,
			Data: []byte(`{"answer_id":"0b9f6f0e-3a0c-4e7e-9a55-3c9d2f1e8a77","seq":-1,"delta":"x"}`)}, false, "negative sequence number"},
		{"chunk of several deltas failing its check", domain.RecordedEvent{Type: room.TypeAnswerChunk, Stream: "room-7", Version: 8,
			Data: []byte(`{"answer_id":"0b9f6f0e-3a0c-4e7e-9a55-3c9d2f1e8a77","seq":1,"delta":"ab","ends":[1]}`)}, false, "1 ends but 0 offsets"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := room.Decode(tt.ev, tt.tolerate)
			switch {
			case tt.wantErr == "" && (err != nil || got != nil):
				t.Errorf("Decode = %v, %v; want nil, nil", got, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Decode error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
