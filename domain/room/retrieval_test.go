package room_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/domain/room"
)

func TestRetrievalRecordedFoldsHarmlessly(t *testing.T) {
	rec := room.RetrievalRecorded{AnswerID: ans1, Query: "rent?", Hits: []room.RetrievalHit{{ChunkID: "c-1", Source: "housing/rent.md", Score: 0.5}},
		Embedder: "lexical", Index: "memory", Model: "m", PromptHash: "ab", Error: ""}
	done := room.AnswerCompleted{AnswerID: ans1, Text: "200,000 won", Chunks: 1,
		Sources: []room.Source{{Document: "housing/rent.md", Title: "Rent", ChunkID: "c-1", Score: 0.5, Snippet: "Up to 200,000 won"}}}
	evs := []room.Event{created, room.MessagePosted{MessageID: msg1, UserID: "42", Text: "rent?"},
		room.AnswerStarted{AnswerID: ans1, QuestionID: msg1}, rec, room.AnswerChunk{AnswerID: ans1, Delta: "200,000 won"}}

	st, recs := given(t, evs...)
	if got, err := room.Decode(recs[3], false); err != nil || !cmp.Equal(got, room.Event(rec)) {
		t.Errorf("Decode(RetrievalRecorded) = %+v, %v; want %+v", got, err, rec)
	}
	// The record is activity of the open answer, and nothing else.
	if st.Open == nil || st.Open.NextSeq != 1 || st.Open.Text.String() != "200,000 won" || !st.Open.LastAt.Equal(recs[4].RecordedAt) {
		t.Fatalf("open answer after the record and a chunk: %+v", st.Open)
	}
	before, _ := given(t, evs[:3]...)
	during, _ := given(t, evs[:4]...)
	if during.Open.LastAt.Equal(before.Open.LastAt) || during.Version != 3 || len(during.Recent) != len(before.Recent) {
		t.Errorf("folding the record: LastAt %s (before %s), version %d, %d recent turns (before %d)",
			during.Open.LastAt, before.Open.LastAt, during.Version, len(during.Recent), len(before.Recent))
	}

	_, recs = given(t, append(evs, done)...)
	h := room.NewHistory()
	for _, r := range recs {
		if err := h.Apply(r); err != nil {
			t.Fatal(err)
		}
	}
	if len(h.Messages) != 2 || h.Messages[1].Text != "200,000 won" || !cmp.Equal(h.Messages[1].Sources, done.Sources) || h.Version != 5 {
		t.Errorf("history %+v", h.Messages)
	}
}
