package projectiontest

import (
	"encoding/json"
	"strconv"
	"testing"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
)

// erasedMarker is in everything the erased room's events say.
const erasedMarker = "MARKER-projection-erase-5d1e"

// testErasedRoomLeavesNothing: once RoomErased is applied, the read model
// holds nothing that was said in the room (its rows dropped, its memory
// emptied), and a rebuild agrees.
func testErasedRoomLeavesNothing(t *testing.T, s Subject) {
	if s.Holds == nil {
		t.Fatal("the Subject has no Holds probe")
	}
	write(t, s, 1, 3, 9)
	const id = 77
	q, a := domain.NameUUID(domain.UUID{}, "erase-q"), domain.NameUUID(domain.UUID{}, "erase-a")
	evs := []room.Event{
		room.RoomCreated{RoomID: id, OwnerID: "7", Title: "title " + erasedMarker},
		room.MessagePosted{MessageID: q, UserID: "7", Text: "question " + erasedMarker},
		room.AnswerStarted{AnswerID: a, QuestionID: q, Model: "m", Instance: "i"},
		room.AnswerChunk{AnswerID: a, Seq: 0, Delta: "answer " + erasedMarker},
		room.AnswerCompleted{AnswerID: a, Text: "answer " + erasedMarker, Sources: []room.Source{}, Chunks: 1},
		room.SummaryUpdated{Summary: "summary " + erasedMarker, CoversThroughVersion: 4, Summarizer: "test"},
	}
	appendRoom(t, s, id, domain.NoStream(), evs...)
	live := s.Rebuild(t, false).Live()
	catchUp(t, s, live, head(t, s))
	if s.Sealed && s.Holds(t, erasedMarker) {
		t.Errorf("the read model holds conversation text in clear, though it seals it")
	}
	appendRoom(t, s, id, domain.Exact(int64(len(evs)-1)), room.RoomErased{RoomID: id, ErasedBy: "7", Reason: room.ErasedByOwner})
	catchUp(t, s, live, head(t, s))
	if s.Holds(t, erasedMarker) {
		t.Errorf("after RoomErased the read model still holds what was said in the room")
	}
	checkEqual(t, s, "after the erasure", domain.Position{})
}

func appendRoom(t *testing.T, s Subject, id int64, exp domain.ExpectedVersion, evs ...room.Event) {
	t.Helper()
	data := make([]domain.EventData, len(evs))
	for i, e := range evs {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		data[i] = domain.EventData{ID: domain.NameUUID(domain.UUID{}, room.Stream(id)+"/"+e.EventType()+strconv.Itoa(i)), Type: e.EventType(), Data: b}
	}
	if _, err := s.Store.Append(t.Context(), room.Stream(id), exp, data...); err != nil {
		t.Fatal(err)
	}
}
