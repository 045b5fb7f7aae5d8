package chat

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/memory"
	"github.com/parleychat/parley/domain/room"
)

func TestPromptMemory(t *testing.T) {
	q1, a1 := domain.UUID{15: 1}, domain.UUID{15: 2}
	q2, a2 := domain.UUID{15: 3}, domain.UUID{15: 4}
	q3, a3 := domain.UUID{15: 5}, domain.UUID{15: 6}
	evs := []room.Event{
		room.RoomCreated{RoomID: 7, OwnerID: "42", Title: "t"},
		room.MessagePosted{MessageID: q1, UserID: "42", Text: "q1"}, room.AnswerStarted{AnswerID: a1, QuestionID: q1}, room.AnswerCompleted{AnswerID: a1, Text: "a1"}, // 1-3
		room.MessagePosted{MessageID: q2, UserID: "42", Text: "q2"}, room.AnswerStarted{AnswerID: a2, QuestionID: q2}, room.AnswerCompleted{AnswerID: a2, Text: "a2"}, // 4-6
		room.SummaryUpdated{Summary: "about q1", CoversThroughVersion: 3},                                                                                             // 7
		room.MessagePosted{MessageID: q3, UserID: "42", Text: "q3"}, room.AnswerStarted{AnswerID: a3, QuestionID: q3}, room.AnswerCompleted{AnswerID: a3, Text: "a3"}, // 8-10
	}
	st := room.NewState()
	for i, e := range evs {
		b, _ := json.Marshal(e)
		if err := st.Evolve(domain.RecordedEvent{Type: e.EventType(), Data: b, Stream: room.Stream(7), Version: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	fromState := []Turn{{RoleUser, "q2"}, {RoleAssistant, "a2"}, {RoleUser, "q3"}, {RoleAssistant, "a3"}}
	tests := []struct {
		name        string
		m           *memory.Conversation
		wantSummary string
		want        []Turn
	}{
		{name: "no read model", wantSummary: "about q1", want: fromState},
		{
			name: "read model current",
			m: &memory.Conversation{Summary: "about q1 (redis)", Through: 3, Version: 10, Turns: []memory.Turn{
				{Question: "q2 (redis)", Answer: "a2 (redis)"}, {Question: "q3 (redis)", Answer: "a3 (redis)"}}},
			wantSummary: "about q1 (redis)",
			want:        []Turn{{RoleUser, "q2 (redis)"}, {RoleAssistant, "a2 (redis)"}, {RoleUser, "q3 (redis)"}, {RoleAssistant, "a3 (redis)"}},
		},
		{
			name: "read model lags: topped up from the stream",
			m: &memory.Conversation{Summary: "about q1 (redis)", Through: 3, Version: 8, Turns: []memory.Turn{
				{Question: "q2 (redis)", Answer: "a2 (redis)"}, {Question: "q3 (redis)", Open: true}}},
			wantSummary: "about q1 (redis)",
			want:        []Turn{{RoleUser, "q2 (redis)"}, {RoleAssistant, "a2 (redis)"}, {RoleUser, "q3 (redis)"}, {RoleAssistant, "a3"}},
		},
		{
			name:        "read model has not seen the summary",
			m:           &memory.Conversation{Through: domain.NoVersion, Version: 6, Turns: []memory.Turn{{Question: "q1"}, {Question: "q2"}}},
			wantSummary: "about q1", want: fromState,
		},
		{
			name:        "read model ahead of this process",
			m:           &memory.Conversation{Summary: "about q1", Through: 3, Version: 12},
			wantSummary: "about q1", want: fromState,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			summary, got := promptMemory(st, tc.m)
			if summary != tc.wantSummary {
				t.Errorf("summary = %q, want %q", summary, tc.wantSummary)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("history (-want +got):\n%s", diff)
			}
		})
	}
}
