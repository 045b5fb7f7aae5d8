package room_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
)

func TestParseMoment(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 600_000_000, time.UTC)
	ev := func(v int64, at time.Time) domain.RecordedEvent {
		return domain.RecordedEvent{Version: v, RecordedAt: at}
	}
	tests := []struct {
		in       string
		wantErr  bool
		includes []bool // of ev(3, t0), ev(4, t0+1s)
	}{
		{in: "3", includes: []bool{true, false}},
		{in: "4", includes: []bool{true, true}},
		{in: "0", includes: []bool{false, false}},
		{in: "2026-01-02T03:04:05.6Z", includes: []bool{true, false}},
		{in: "2026-01-02T04:04:06.6+01:00", includes: []bool{true, true}},
		{in: "2026-01-02T03:04:05Z", includes: []bool{false, false}},
		{in: "-1", wantErr: true},
		{in: "yesterday", wantErr: true},
		{in: "2026-01-02", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tc := range tests {
		m, err := room.ParseMoment(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("ParseMoment(%q) error %v, want error %v", tc.in, err, tc.wantErr)
			continue
		}
		if err != nil {
			if got := domain.ErrorCode(err); got != domain.EINVALID {
				t.Errorf("ParseMoment(%q) code %q, want invalid", tc.in, got)
			}
			continue
		}
		got := []bool{m.Includes(ev(3, t0)), m.Includes(ev(4, t0.Add(time.Second)))}
		if diff := cmp.Diff(tc.includes, got); diff != "" {
			t.Errorf("ParseMoment(%q) = %v includes (-want +got):\n%s", tc.in, m, diff)
		}
	}
}

func TestHistoryAsOf(t *testing.T) {
	_, recs := given(t, created,
		room.MessagePosted{MessageID: msg1, UserID: "42", Text: "How much?"},
		room.AnswerStarted{AnswerID: ans1, QuestionID: msg1},
		room.AnswerChunk{AnswerID: ans1, Seq: 0, Delta: "Up to "},
		room.AnswerChunk{AnswerID: ans1, Seq: 1, Delta: "200,000 won."},
		room.AnswerCompleted{AnswerID: ans1, Text: "Up to 200,000 won.", Sources: []room.Source{{Document: "d", ChunkID: "c"}}, Chunks: 2},
	)
	// given records version i at 1000+i seconds.
	at := func(v int64) time.Time { return time.Unix(1000+v, 0).UTC() }
	type msg struct{ Role, Text, Status string }
	tests := []struct {
		name        string
		m           room.Moment
		wantVersion int64
		want        []msg
	}{
		{"before the question", room.AtVersion(0), 0, nil},
		{"question only", room.AtVersion(1), 1, []msg{{"user", "How much?", "complete"}}},
		{"answer started", room.AtVersion(2), 2, []msg{{"user", "How much?", "complete"}, {"assistant", "", "streaming"}}},
		{"mid stream", room.AtVersion(3), 3, []msg{{"user", "How much?", "complete"}, {"assistant", "Up to ", "streaming"}}},
		{"complete", room.AtVersion(5), 5, []msg{{"user", "How much?", "complete"}, {"assistant", "Up to 200,000 won.", "complete"}}},
		{"past the end", room.AtVersion(99), 5, []msg{{"user", "How much?", "complete"}, {"assistant", "Up to 200,000 won.", "complete"}}},
		{"by time, mid stream", room.AtTime(at(4).Add(-time.Millisecond)), 3, []msg{{"user", "How much?", "complete"}, {"assistant", "Up to ", "streaming"}}},
		{"by time, exact", room.AtTime(at(4)), 4, []msg{{"user", "How much?", "complete"}, {"assistant", "Up to 200,000 won.", "streaming"}}},
		{"by time, before the room", room.AtTime(at(0).Add(-time.Second)), domain.NoVersion, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := room.HistoryAsOf(recs, tc.m)
			if err != nil {
				t.Fatal(err)
			}
			var got []msg
			for _, m := range h.Messages {
				got = append(got, msg{m.Role, m.Text, m.Status})
			}
			if h.Version != tc.wantVersion {
				t.Errorf("version %d, want %d", h.Version, tc.wantVersion)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("messages (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMomentPrefixStopsAtTheFirstLaterEvent(t *testing.T) {
	t0 := time.Unix(1000, 0).UTC()
	data, _ := json.Marshal(created)
	evs := []domain.RecordedEvent{
		{Type: room.TypeRoomCreated, Data: data, Version: 0, RecordedAt: t0},
		{Type: "Other", Data: []byte(`{}`), Version: 1, RecordedAt: t0.Add(2 * time.Second)},
		{Type: "Other", Data: []byte(`{}`), Version: 2, RecordedAt: t0.Add(time.Second)}, // recorded "earlier"
	}
	got := room.AtTime(t0.Add(time.Second)).Prefix(evs)
	if len(got) != 1 {
		t.Errorf("prefix has %d events, want 1 (a moment is a prefix of the stream)", len(got))
	}
}
