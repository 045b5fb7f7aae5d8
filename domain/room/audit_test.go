package room_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
)

func TestAuditAccessedIsFoldedHarmlessly(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	audit := room.AuditAccessed{UserID: "7", Interface: room.InterfaceWebSocket, At: at}
	_, before := given(t, created, room.MessagePosted{MessageID: msg1, UserID: "42", Text: "Hi"},
		room.AnswerStarted{AnswerID: ans1, QuestionID: msg1})
	withAudit := append([]domain.RecordedEvent(nil), before...)
	data, err := json.Marshal(audit)
	if err != nil {
		t.Fatal(err)
	}
	withAudit = append(withAudit, domain.RecordedEvent{Type: audit.EventType(), Data: data, Stream: room.Stream(7), Version: 3, RecordedAt: at})

	p, err := room.Decode(withAudit[3], false)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if diff := cmp.Diff(room.Event(audit), p); diff != "" {
		t.Errorf("Decode (-want +got):\n%s", diff)
	}

	st, h := room.NewState(), room.NewHistory()
	stBefore, hBefore := room.NewState(), room.NewHistory()
	for i, ev := range withAudit {
		if err := st.Evolve(ev); err != nil {
			t.Fatal(err)
		}
		if err := h.Apply(ev); err != nil {
			t.Fatal(err)
		}
		if i < 3 {
			_ = stBefore.Evolve(ev)
			_ = hBefore.Apply(ev)
		}
	}
	if st.Version != 3 || h.Version != 3 {
		t.Errorf("versions after the audit event: state %d, history %d; want 3 and 3", st.Version, h.Version)
	}
	if diff := cmp.Diff(hBefore.Messages, h.Messages); diff != "" {
		t.Errorf("the audit event changed the history's messages (-before +after):\n%s", diff)
	}
	if st.Open == nil || st.Open.AnswerID != ans1 || len(st.Recent) != len(stBefore.Recent) || !st.Exists() || st.Owner != "42" {
		t.Errorf("the audit event changed the state: open %+v, recent %v", st.Open, st.Recent)
	}
}
