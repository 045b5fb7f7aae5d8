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

// TestRetrievalRecordedDetails: the rewrite, the lists and the fused order
// round-trip, and a record written before they existed still decodes.
func TestRetrievalRecordedDetails(t *testing.T) {
	rec := room.RetrievalRecorded{AnswerID: ans1, Query: "debt help?", Embedder: "terms-ko-en-1/bm25", Index: "postgres", Model: "m", PromptHash: "ab",
		Hits:       []room.RetrievalHit{{ChunkID: "c-1", Source: "finance/credit-recovery.ko.md", Score: 0.5}},
		Rewrite:    &room.QueryRewrite{Model: "ollama/llama3.2", Queries: []string{"청년 채무 조정"}},
		Retrievers: []room.RetrieverRun{{Kind: "sparse", Model: "terms-ko-en-1/bm25", Query: "청년 채무 조정", Hits: []room.RetrievalHit{{ChunkID: "c-1", Source: "finance/credit-recovery.ko.md", Score: 0.42}}}},
		Fused:      []room.RetrievalHit{{ChunkID: "c-1", Source: "finance/credit-recovery.ko.md", Score: 0.5}}}
	_, recs := given(t, created, room.MessagePosted{MessageID: msg1, UserID: "42", Text: "debt help?"}, room.AnswerStarted{AnswerID: ans1, QuestionID: msg1}, rec)
	if got, err := room.Decode(recs[3], false); err != nil || !cmp.Equal(got, room.Event(rec)) {
		t.Errorf("Decode = %+v, %v; want %+v", got, err, rec)
	}
	old := recs[3]
	old.Data = []byte(`{"answer_id":"` + ans1.String() + `","query":"rent?","hits":[{"chunk_id":"c-1","source":"a.md","score":0.9}],"embedder":"lexical-hash-384","index":"postgres","model":"m","prompt_hash":"ab"}`)
	got, err := room.Decode(old, false)
	want := room.RetrievalRecorded{AnswerID: ans1, Query: "rent?", Hits: []room.RetrievalHit{{ChunkID: "c-1", Source: "a.md", Score: 0.9}},
		Embedder: "lexical-hash-384", Index: "postgres", Model: "m", PromptHash: "ab"}
	if err != nil || !cmp.Equal(got, room.Event(want)) {
		t.Errorf("Decode of a record from before the details = %+v, %v; want %+v", got, err, want)
	}
}
