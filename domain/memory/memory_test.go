package memory_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/memory"
	"github.com/parleychat/parley/domain/room"
)

// words counts white-space separated words: a token counter for tests.
type words struct{}

func (words) Count(s string) int { return len(strings.Fields(s)) }

func uuid(n byte) domain.UUID { return domain.UUID{15: n, 6: 0x40, 8: 0x80} }

// recorded returns evs as recorded at versions 0, 1, ... of room 7.
func recorded(t *testing.T, evs ...room.Event) []domain.RecordedEvent {
	t.Helper()
	out := make([]domain.RecordedEvent, len(evs))
	for i, e := range evs {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = domain.RecordedEvent{Type: e.EventType(), Data: b, Stream: room.Stream(7), Version: int64(i), RecordedAt: time.Unix(int64(i), 0)}
	}
	return out
}

// turn returns the events of one exchange: question n and its answer,
// completed with text (or failed when text is "").
func turn(n byte, question, text string) []room.Event {
	q, a := uuid(2*n), uuid(2*n+1)
	evs := []room.Event{
		room.MessagePosted{MessageID: q, UserID: "42", Text: question},
		room.AnswerStarted{AnswerID: a, QuestionID: q},
		room.AnswerChunk{AnswerID: a, Delta: text},
	}
	if text == "" {
		return append(evs, room.AnswerFailed{AnswerID: a, Reason: room.ReasonTimeout})
	}
	return append(evs, room.AnswerCompleted{AnswerID: a, Text: text})
}

func concat(parts ...[]room.Event) []room.Event {
	var out []room.Event
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

var created = room.RoomCreated{RoomID: 7, OwnerID: "42", Title: "Housing"}

func TestConversationFold(t *testing.T) {
	evs := recorded(t, concat(
		[]room.Event{created},
		turn(1, "What is the housing allowance?", "Up to 200,000 won a month."),                            // versions 1-4
		turn(2, "Who can apply?", ""),                                                                      // 5-8, failed
		turn(3, "And for students?", "Students qualify too."),                                              // 9-12
		[]room.Event{room.SummaryUpdated{Summary: "Housing: up to 200,000 won.", CoversThroughVersion: 8}}, // 13
		[]room.Event{room.MessagePosted{MessageID: uuid(90), UserID: "42", Text: "Deadline?"}, room.AnswerStarted{AnswerID: uuid(91), QuestionID: uuid(90)}}, // 14-15
		[]room.Event{room.SummaryUpdated{Summary: "stale", CoversThroughVersion: 4}},                                                                         // 16: older, ignored
	)...)
	c := memory.NewConversation()
	for _, ev := range evs {
		if err := c.Apply(ev); err != nil {
			t.Fatal(err)
		}
	}
	want := &memory.Conversation{
		Summary: "Housing: up to 200,000 won.",
		Through: 8,
		Turns: []memory.Turn{
			{Question: "And for students?", Answer: "Students qualify too.", QuestionVersion: 9, EndVersion: 12},
			{Question: "Deadline?", QuestionVersion: 14, EndVersion: 14, Open: true, AnswerID: uuid(91)},
		},
		Version: 16,
	}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("conversation (-want +got):\n%s", diff)
	}

	// Applying any of it again changes nothing.
	again := c.Clone()
	for _, ev := range evs {
		if err := again.Apply(ev); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff(c, again); diff != "" {
		t.Errorf("replay changed the conversation (-before +after):\n%s", diff)
	}

	// Starting from the summary and folding the events after it gives the
	// same memory as folding the whole stream.
	from := memory.Start("Housing: up to 200,000 won.", 8)
	for _, ev := range evs[9:] {
		if err := from.Apply(ev); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff(c, from); diff != "" {
		t.Errorf("fold from the summary (-full +from summary):\n%s", diff)
	}

	// The answer ends; then the room is deleted.
	end := recorded(t, room.AnswerCompleted{AnswerID: uuid(91), Text: "March."}, room.RoomDeleted{RoomID: 7})
	end[0].Version, end[1].Version = 17, 18
	_ = c.Apply(end[0])
	if got := c.Turns[1]; got.Open || got.Answer != "March." || got.EndVersion != 17 || !got.AnswerID.IsZero() {
		t.Errorf("ended turn = %+v", got)
	}
	_ = c.Apply(end[1])
	if !c.Deleted || c.Summary != "" || len(c.Turns) != 0 || c.Version != 18 {
		t.Errorf("deleted room's memory = %+v", c)
	}
}

// TestApplyDecodesOnlyWhatItFolds pins down which malformed events Apply
// rejects: those of a type it folds, not the others (chunks above all),
// which it does not decode.
func TestApplyDecodesOnlyWhatItFolds(t *testing.T) {
	for _, typ := range []string{room.TypeMessagePosted, room.TypeAnswerStarted, room.TypeAnswerCompleted, room.TypeAnswerFailed,
		room.TypeAnswerCancelled, room.TypeSummaryUpdated, room.TypeRoomDeleted} {
		c := memory.NewConversation()
		bad := domain.RecordedEvent{Type: typ, Data: []byte(`{"text": 5, "answer_id": 5, "summary": 5, "room_id": "x"}`), Stream: room.Stream(7), Version: 3}
		if err := c.Apply(bad); err == nil || !strings.Contains(err.Error(), typ) {
			t.Errorf("malformed %s: Apply = %v, want an error naming it", typ, err)
		}
		if c.Version != domain.NoVersion {
			t.Errorf("malformed %s: Version moved to %d", typ, c.Version)
		}
	}
	for _, typ := range []string{room.TypeRoomCreated, room.TypeAnswerChunk, room.TypeRetrievalRecorded, room.TypeAuditAccessed, "Unknown"} {
		c := memory.NewConversation()
		bad := domain.RecordedEvent{Type: typ, Data: []byte(`not json`), Stream: room.Stream(7), Version: 3}
		if err := c.Apply(bad); err != nil {
			t.Errorf("malformed %s: Apply = %v, want nil: the memory does not read it", typ, err)
		}
		if c.Version != 3 {
			t.Errorf("malformed %s: Version = %d, want 3", typ, c.Version)
		}
	}
}

func TestPlan(t *testing.T) {
	closed := func(q, a string) memory.Turn { return memory.Turn{Question: q, Answer: a} }
	five := closed("one two three", "four five")         // 5 tokens
	three := closed("one two", "three")                  // 3 tokens
	open := memory.Turn{Question: "a b c d", Open: true} // 4 tokens
	tests := []struct {
		name  string
		turns []memory.Turn
		limit int
		want  int
	}{
		{"empty", nil, 0, 0},
		{"fits", []memory.Turn{five, three}, 8, 0},
		{"one over", []memory.Turn{five, three}, 7, 1},
		{"folds whole turns until it fits", []memory.Turn{three, three, five, three}, 8, 2},
		{"the newest alone is over: all go", []memory.Turn{three, five}, 4, 2},
		{"an open turn is never folded", []memory.Turn{five, open}, 3, 1},
		{"nor anything after it", []memory.Turn{open, five}, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := memory.Plan(tc.turns, words{}, tc.limit); got != tc.want {
				t.Errorf("Plan = %d, want %d", got, tc.want)
			}
		})
	}
}
