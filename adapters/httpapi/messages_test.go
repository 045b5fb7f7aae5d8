package httpapi_test

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/adapters/httpapi"
	"github.com/parleychat/parley/adapters/inmem"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
)

// TestStreamingMessagesReadsTheOpenAnswer: the read model's row of an
// answer still streaming is completed with the chunks after it in the
// stream, up to the page's bound; finished messages are left as they are.
func TestStreamingMessagesReadsTheOpenAnswer(t *testing.T) {
	store := inmem.New(nil)
	q, a := domain.UUID{1}, domain.UUID{2}
	var data []domain.EventData
	for i, e := range []room.Event{
		room.RoomCreated{RoomID: 7, OwnerID: "42", Title: "t"},
		room.MessagePosted{MessageID: q, UserID: "42", Text: "How much?"},
		room.AnswerStarted{AnswerID: a, QuestionID: q},
		room.AnswerChunk{AnswerID: a, Seq: 0, Delta: "Up to "},
		room.AnswerChunk{AnswerID: a, Seq: 1, Delta: "200,000 "},
		room.AnswerChunk{AnswerID: a, Seq: 2, Delta: "won."},
	} {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		data = append(data, domain.EventData{ID: domain.UUID{10, byte(i)}, Type: e.EventType(), Data: b})
	}
	if _, err := store.Append(t.Context(), room.Stream(7), domain.NoStream(), data...); err != nil {
		t.Fatal(err)
	}
	// The read model as the ChatLog holds it: the answer's opening row.
	base := &fakePager{msgs: map[int64][]room.Message{7: {
		{ID: q, Role: room.RoleUser, Text: "How much?", Status: room.StatusComplete, Version: 1},
		{ID: a, Role: room.RoleAssistant, Status: room.StatusStreaming, Version: 2},
	}}}
	p := httpapi.StreamingMessages{Base: base, Stream: store}
	for _, tc := range []struct {
		before      int64
		wantText    string
		wantVersion int64
	}{
		{1 << 62, "Up to 200,000 won.", 5},
		{5, "Up to 200,000 ", 4}, // a page bounded below the last chunk stops there
	} {
		got, err := p.Messages(t.Context(), 7, tc.before, 10)
		if err != nil {
			t.Fatal(err)
		}
		want := []room.Message{
			{ID: a, Role: room.RoleAssistant, Text: tc.wantText, Status: room.StatusStreaming, Version: tc.wantVersion},
			{ID: q, Role: room.RoleUser, Text: "How much?", Status: room.StatusComplete, Version: 1},
		}
		if diff := cmp.Diff(want, got, cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".UpdatedAt" }, cmp.Ignore())); diff != "" {
			t.Errorf("before %d: messages (-want +got):\n%s", tc.before, diff)
		}
	}
}
