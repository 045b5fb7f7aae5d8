package room_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
)

var (
	msg1 = domain.MustParseUUID("00000000-0000-4000-8000-000000000001")
	ans1 = domain.MustParseUUID("00000000-0000-4000-8000-000000000002")
	msg2 = domain.MustParseUUID("00000000-0000-4000-8000-000000000003")
	ans2 = domain.MustParseUUID("00000000-0000-4000-8000-000000000004")
)

// given folds events into a fresh state, as recorded at versions 0, 1, ...
func given(t *testing.T, evs ...room.Event) (*room.State, []domain.RecordedEvent) {
	t.Helper()
	s := room.NewState()
	var recs []domain.RecordedEvent
	for i, e := range evs {
		typ, data, err := room.Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		rec := domain.RecordedEvent{Type: typ, Data: data, Stream: room.Stream(7), Version: int64(i), RecordedAt: time.Unix(int64(1000+i), 0).UTC()}
		if err := s.Evolve(rec); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
	return s, recs
}

var created = room.RoomCreated{RoomID: 7, OwnerID: "42", Title: "Housing"}

func post(user, text string, id, answer domain.UUID) room.Post {
	return room.Post{UserID: user, Text: text, MessageID: id, AnswerID: answer, Model: "m", Instance: "i"}
}

func TestDecisions(t *testing.T) {
	tests := []struct {
		name     string
		given    []room.Event
		when     func(*room.State) ([]room.Event, error)
		then     []room.Event
		wantCode string
	}{
		{
			name: "create",
			when: func(s *room.State) ([]room.Event, error) { return room.Create(s, 7, "42", "  Housing ") },
			then: []room.Event{created},
		},
		{
			name:     "create twice",
			given:    []room.Event{created},
			when:     func(s *room.State) ([]room.Event, error) { return room.Create(s, 7, "42", "x") },
			wantCode: domain.ECONFLICT,
		},
		{
			name:     "create with empty title",
			when:     func(s *room.State) ([]room.Event, error) { return room.Create(s, 7, "42", "  ") },
			wantCode: domain.EINVALID,
		},
		{
			name:  "owner posts",
			given: []room.Event{created},
			when:  func(s *room.State) ([]room.Event, error) { return room.PostMessage(s, post("42", "hi", msg1, ans1)) },
			then: []room.Event{
				room.MessagePosted{MessageID: msg1, UserID: "42", Text: "hi"},
				room.AnswerStarted{AnswerID: ans1, QuestionID: msg1, Model: "m", Instance: "i"},
			},
		},
		{
			name:     "stranger posts",
			given:    []room.Event{created},
			when:     func(s *room.State) ([]room.Event, error) { return room.PostMessage(s, post("43", "hi", msg1, ans1)) },
			wantCode: domain.EFORBIDDEN,
		},
		{
			name:     "post to missing room",
			when:     func(s *room.State) ([]room.Event, error) { return room.PostMessage(s, post("42", "hi", msg1, ans1)) },
			wantCode: domain.ENOTFOUND,
		},
		{
			name:     "post to deleted room",
			given:    []room.Event{created, room.RoomDeleted{RoomID: 7, DeletedBy: "42"}},
			when:     func(s *room.State) ([]room.Event, error) { return room.PostMessage(s, post("42", "hi", msg1, ans1)) },
			wantCode: domain.ENOTFOUND,
		},
		{
			name:     "post while an answer streams",
			given:    []room.Event{created, room.MessagePosted{MessageID: msg1, UserID: "42", Text: "a"}, room.AnswerStarted{AnswerID: ans1, QuestionID: msg1}},
			when:     func(s *room.State) ([]room.Event, error) { return room.PostMessage(s, post("42", "b", msg2, ans2)) },
			wantCode: domain.EBUSY,
		},
		{
			name:  "retried post decides nothing",
			given: []room.Event{created, room.MessagePosted{MessageID: msg1, UserID: "42", Text: "a"}, room.AnswerStarted{AnswerID: ans1, QuestionID: msg1}},
			when:  func(s *room.State) ([]room.Event, error) { return room.PostMessage(s, post("42", "a", msg1, ans1)) },
		},
		{
			name:     "empty message",
			given:    []room.Event{created},
			when:     func(s *room.State) ([]room.Event, error) { return room.PostMessage(s, post("42", " \n", msg1, ans1)) },
			wantCode: domain.EINVALID,
		},
		{
			name:  "NUL in message",
			given: []room.Event{created},
			when: func(s *room.State) ([]room.Event, error) {
				return room.PostMessage(s, post("42", "a\x00b", msg1, ans1))
			},
			wantCode: domain.EINVALID,
		},
		{
			name:  "message over 8 KiB",
			given: []room.Event{created},
			when: func(s *room.State) ([]room.Event, error) {
				return room.PostMessage(s, post("42", string(make([]byte, 8193)), msg1, ans1))
			},
			wantCode: domain.ETOOLARGE,
		},
		{
			name: "cancel keeps the streamed text",
			given: []room.Event{created, room.MessagePosted{MessageID: msg1, UserID: "42", Text: "a"}, room.AnswerStarted{AnswerID: ans1, QuestionID: msg1},
				room.AnswerChunk{AnswerID: ans1, Seq: 0, Delta: "Hel"}, room.AnswerChunk{AnswerID: ans1, Seq: 1, Delta: "lo"}},
			when: func(s *room.State) ([]room.Event, error) { return room.Cancel(s, "42") },
			then: []room.Event{room.AnswerCancelled{AnswerID: ans1, Reason: room.ReasonCancelled, By: "42", Text: "Hello"}},
		},
		{
			name:     "cancel with nothing streaming",
			given:    []room.Event{created},
			when:     func(s *room.State) ([]room.Event, error) { return room.Cancel(s, "42") },
			wantCode: domain.EINVALID,
		},
		{
			name:  "post after the answer completed",
			given: []room.Event{created, room.MessagePosted{MessageID: msg1, UserID: "42", Text: "a"}, room.AnswerStarted{AnswerID: ans1, QuestionID: msg1}, room.AnswerCompleted{AnswerID: ans1, Text: "x"}},
			when:  func(s *room.State) ([]room.Event, error) { return room.PostMessage(s, post("42", "b", msg2, ans2)) },
			then: []room.Event{
				room.MessagePosted{MessageID: msg2, UserID: "42", Text: "b"},
				room.AnswerStarted{AnswerID: ans2, QuestionID: msg2, Model: "m", Instance: "i"},
			},
		},
		{
			name:  "delete cancels the open answer",
			given: []room.Event{created, room.MessagePosted{MessageID: msg1, UserID: "42", Text: "a"}, room.AnswerStarted{AnswerID: ans1, QuestionID: msg1}},
			when:  func(s *room.State) ([]room.Event, error) { return room.Delete(s, "42") },
			then: []room.Event{
				room.AnswerCancelled{AnswerID: ans1, Reason: room.ReasonRoomDeleted, By: "42"},
				room.RoomDeleted{RoomID: 7, DeletedBy: "42"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := given(t, tc.given...)
			got, err := tc.when(s)
			if code := domain.ErrorCode(err); code != tc.wantCode {
				t.Fatalf("error = %v (code %q), want code %q", err, code, tc.wantCode)
			}
			if diff := cmp.Diff(tc.then, got); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHistoryFold(t *testing.T) {
	_, recs := given(t, created,
		room.MessagePosted{MessageID: msg1, UserID: "42", Text: "What is the housing allowance?", ClientID: "c1"},
		room.AnswerStarted{AnswerID: ans1, QuestionID: msg1},
		room.AnswerChunk{AnswerID: ans1, Seq: 0, Delta: "Up to "},
		room.AnswerChunk{AnswerID: ans1, Seq: 1, Delta: "200,000 won."},
		room.AnswerCompleted{AnswerID: ans1, Text: "Up to 200,000 won.", Sources: []room.Source{{Document: "housing.md", ChunkID: "c", Score: 0.9, Snippet: "s"}}},
		room.MessagePosted{MessageID: msg2, UserID: "42", Text: "And jobs?"},
		room.AnswerStarted{AnswerID: ans2, QuestionID: msg2},
		room.AnswerChunk{AnswerID: ans2, Seq: 0, Delta: "Part"},
	)
	h := room.NewHistory()
	for _, r := range recs {
		if err := h.Apply(r); err != nil {
			t.Fatal(err)
		}
	}
	type row struct {
		ID      domain.UUID
		Role    string
		Text    string
		Status  string
		Version int64
	}
	var got []row
	for _, m := range h.Messages {
		got = append(got, row{m.ID, m.Role, m.Text, m.Status, m.Version})
	}
	want := []row{
		{msg1, "user", "What is the housing allowance?", "complete", 1},
		{ans1, "assistant", "Up to 200,000 won.", "complete", 5},
		{msg2, "user", "And jobs?", "complete", 6},
		{ans2, "assistant", "Part", "streaming", 8},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}
	if h.Version != 8 {
		t.Errorf("history version = %d, want 8", h.Version)
	}
	// Loading a page at version 5 and applying the whole stream again gives
	// the same result: events at or below the page's version are skipped.
	h2 := room.NewHistory()
	h2.Load(append([]room.Message(nil), h.Messages[:2]...), 5)
	for _, r := range recs {
		if err := h2.Apply(r); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff(h.Messages, h2.Messages, cmp.AllowUnexported(room.History{})); diff != "" {
		t.Errorf("page + tail differs from the full fold (-full +paged):\n%s", diff)
	}
}

func TestStreamNames(t *testing.T) {
	for _, tc := range []struct {
		in string
		id int64
		ok bool
	}{{"room-12", 12, true}, {"room-0", 0, false}, {"room-012", 0, false}, {"room-x", 0, false}, {"other-12", 0, false}} {
		id, ok := room.ParseStream(tc.in)
		if id != tc.id || ok != tc.ok {
			t.Errorf("ParseStream(%q) = %d, %v; want %d, %v", tc.in, id, ok, tc.id, tc.ok)
		}
	}
	if room.Stream(12) != "room-12" {
		t.Errorf("Stream(12) = %q", room.Stream(12))
	}
}

func TestSummaryUpdated(t *testing.T) {
	summary := room.SummaryUpdated{Summary: "Asked about housing.", CoversThroughVersion: 4, Tokens: 5, Summarizer: "extractive"}
	st, recs := given(t, created,
		room.MessagePosted{MessageID: msg1, UserID: "42", Text: "What is the housing allowance?"},
		room.AnswerStarted{AnswerID: ans1, QuestionID: msg1},
		room.AnswerChunk{AnswerID: ans1, Seq: 0, Delta: "Up to 200,000 won."},
		room.AnswerCompleted{AnswerID: ans1, Text: "Up to 200,000 won."},
		room.MessagePosted{MessageID: msg2, UserID: "42", Text: "And jobs?"},
		room.AnswerStarted{AnswerID: ans2, QuestionID: msg2},
		summary,
		room.AnswerCompleted{AnswerID: ans2, Text: "See the job centre."},
		// An older summary arriving late never replaces a newer one.
		room.SummaryUpdated{Summary: "stale", CoversThroughVersion: 3},
	)

	if got := string(recs[7].Data); got != `{"summary":"Asked about housing.","covers_through_version":4,"tokens":5,"summarizer":"extractive"}` {
		t.Errorf("SummaryUpdated JSON = %s", got)
	}
	p, err := room.Decode(recs[7], false)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(room.Event(summary), p); diff != "" {
		t.Errorf("decoded (-want +got):\n%s", diff)
	}

	if st.Summary != "Asked about housing." || st.SummaryThrough != 4 || st.Version != 9 {
		t.Errorf("state summary %q through %d version %d; want the first summary through 4 at version 9", st.Summary, st.SummaryThrough, st.Version)
	}
	wantBuffer := []room.Turn{
		{Role: room.RoleUser, Text: "And jobs?", Version: 5},
		{Role: room.RoleAssistant, Text: "See the job centre.", Version: 8},
	}
	if diff := cmp.Diff(wantBuffer, st.Buffer()); diff != "" {
		t.Errorf("buffer (-want +got):\n%s", diff)
	}
	if len(st.Recent) != 4 {
		t.Errorf("recent holds %d messages, want all 4", len(st.Recent))
	}

	h := room.NewHistory()
	for _, r := range recs {
		if err := h.Apply(r); err != nil {
			t.Fatal(err)
		}
	}
	if len(h.Messages) != 4 || h.Version != 9 {
		t.Errorf("history has %d messages at version %d; want 4 at 9 (summaries add none)", len(h.Messages), h.Version)
	}
}
