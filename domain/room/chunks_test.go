package room_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
)

func TestNewAnswerChunk(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tests := []struct {
		name    string
		deltas  []string
		emitted []time.Time
		want    room.AnswerChunk
		wantOut []room.Delta
	}{
		{"one delta: the form every chunk had before", []string{"Up to "}, []time.Time{t0},
			room.AnswerChunk{AnswerID: ans1, Seq: 4, Delta: "Up to "},
			[]room.Delta{{Text: "Up to "}}},
		{"three deltas", []string{"Up ", "to ", "200"}, []time.Time{t0, t0.Add(12 * time.Millisecond), t0.Add(31400 * time.Microsecond)},
			room.AnswerChunk{AnswerID: ans1, Seq: 4, Delta: "Up to 200", Ends: []int{3, 6}, OffsetsMS: []int64{12, 31}},
			[]room.Delta{{Text: "Up "}, {Text: "to ", At: 12 * time.Millisecond}, {Text: "200", At: 31 * time.Millisecond}}},
		{"a clock that stepped back keeps offsets at 0", []string{"a", "b"}, []time.Time{t0, t0.Add(-time.Second)},
			room.AnswerChunk{AnswerID: ans1, Seq: 4, Delta: "ab", Ends: []int{1}, OffsetsMS: []int64{0}},
			[]room.Delta{{Text: "a"}, {Text: "b"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := room.NewAnswerChunk(ans1, 4, tc.deltas, tc.emitted)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("NewAnswerChunk (-want +got):\n%s", diff)
			}
			if got.Count() != len(tc.deltas) {
				t.Errorf("Count = %d, want %d", got.Count(), len(tc.deltas))
			}
			if diff := cmp.Diff(tc.wantOut, got.Deltas()); diff != "" {
				t.Errorf("Deltas (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDecodeAnswerChunk: both forms decode, and a chunk whose ends or
// offsets do not fit its text is refused.
func TestDecodeAnswerChunk(t *testing.T) {
	tests := []struct {
		data string
		want room.Event
		ok   bool
	}{
		{`{"answer_id":"` + ans1.String() + `","seq":3,"delta":"Hello"}`, room.AnswerChunk{AnswerID: ans1, Seq: 3, Delta: "Hello"}, true},
		{`{"answer_id":"` + ans1.String() + `","seq":3,"delta":"Hello","ends":[3],"offsets_ms":[20]}`,
			room.AnswerChunk{AnswerID: ans1, Seq: 3, Delta: "Hello", Ends: []int{3}, OffsetsMS: []int64{20}}, true},
		{`{"answer_id":"` + ans1.String() + `","seq":3,"delta":"Hello","ends":[3]}`, nil, false},                       // an offset missing
		{`{"answer_id":"` + ans1.String() + `","seq":3,"delta":"Hello","ends":[5],"offsets_ms":[1]}`, nil, false},      // an empty last delta
		{`{"answer_id":"` + ans1.String() + `","seq":3,"delta":"Hello","ends":[0],"offsets_ms":[1]}`, nil, false},      // an empty first delta
		{`{"answer_id":"` + ans1.String() + `","seq":3,"delta":"Hello","ends":[3,2],"offsets_ms":[1,2]}`, nil, false},  // ends going back
		{`{"answer_id":"` + ans1.String() + `","seq":3,"delta":"Hello","ends":[2,3],"offsets_ms":[5,2]}`, nil, false},  // offsets going back
		{`{"answer_id":"` + ans1.String() + `","seq":-1,"delta":"Hello"}`, nil, false},                                 // a negative seq
		{`{"answer_id":"` + ans1.String() + `","seq":3,"delta":"Hello","ends":[2,3],"offsets_ms":[-1,2]}`, nil, false}, // a negative offset
	}
	for _, tc := range tests {
		got, err := room.Decode(domain.RecordedEvent{Type: room.TypeAnswerChunk, Stream: room.Stream(7), Data: []byte(tc.data)}, false)
		if (err == nil) != tc.ok {
			t.Errorf("Decode(%s) error %v, want ok=%v", tc.data, err, tc.ok)
			continue
		}
		if diff := cmp.Diff(tc.want, got); tc.ok && diff != "" {
			t.Errorf("Decode(%s) (-want +got):\n%s", tc.data, diff)
		}
	}
}

// TestChunksOfSeveralDeltasFold: the state's next sequence number and
// text, and the history's message, follow chunks of one and of several
// deltas alike.
func TestChunksOfSeveralDeltasFold(t *testing.T) {
	t0 := time.Unix(1000, 0)
	evs := []room.Event{created,
		room.MessagePosted{MessageID: msg1, UserID: "42", Text: "How much?"},
		room.AnswerStarted{AnswerID: ans1, QuestionID: msg1},
		room.AnswerChunk{AnswerID: ans1, Seq: 0, Delta: "Up "},
		room.NewAnswerChunk(ans1, 1, []string{"to ", "200,", "000 "}, []time.Time{t0, t0, t0}),
		room.NewAnswerChunk(ans1, 4, []string{"won", "."}, []time.Time{t0, t0}),
	}
	st, recs := given(t, evs...)
	if st.Open == nil || st.Open.NextSeq != 6 || st.Open.Text.String() != "Up to 200,000 won." {
		t.Fatalf("open answer %+v, want next seq 6 and the whole text", st.Open)
	}
	h := room.NewHistory()
	for _, r := range recs {
		if err := h.Apply(r); err != nil {
			t.Fatal(err)
		}
	}
	if got := h.Messages[1].Text; got != "Up to 200,000 won." {
		t.Errorf("history text %q", got)
	}
}

func TestChunkPolicy(t *testing.T) {
	for _, typ := range room.ChunkTypes() {
		if !room.IsChunk(typ) {
			t.Errorf("IsChunk(%q) = false for a type ChunkTypes lists", typ)
		}
	}
	for _, typ := range []string{room.TypeAnswerStarted, room.TypeAnswerCompleted, room.TypeAnswerFailed, room.TypeMessagePosted, room.TypeRetrievalRecorded, ""} {
		if room.IsChunk(typ) {
			t.Errorf("IsChunk(%q) = true", typ)
		}
	}
}
