package wsapi_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/adapters/wsapi"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/domaintest"
	"github.com/parleychat/parley/domain/room"
)

// roomStream records events as room 7's stream, each with hash hashAt(version).
func roomStream(t *testing.T, evs ...room.Event) []domain.RecordedEvent {
	t.Helper()
	var out []domain.RecordedEvent
	for i, e := range evs {
		ed, err := room.EncodeEvent(domain.NameUUID(domain.UUID{}, fmt.Sprint(i)), e, domain.Metadata{})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, domain.RecordedEvent{ID: ed.ID, Type: ed.Type, Data: ed.Data, Stream: room.Stream(7), Version: int64(i),
			Metadata: []byte(fmt.Sprintf(`{"prev_hash":"%064x","hash":"%064x"}`, i, 100+i))})
	}
	return out
}

func hashAt(v int) string { return fmt.Sprintf("%064x", 100+v) }

func TestProjectedHistory(t *testing.T) {
	q := domain.MustParseUUID("00000000-0000-4000-8000-000000000001")
	a := domain.MustParseUUID("00000000-0000-4000-8000-000000000002")
	log := roomStream(t,
		room.RoomCreated{RoomID: 7, OwnerID: "42", Title: "t"},
		room.MessagePosted{MessageID: q, UserID: "42", Text: "rent?"},
		room.AnswerStarted{AnswerID: a, QuestionID: q},
		room.AnswerChunk{AnswerID: a, Seq: 0, Delta: "up to "},
		room.AnswerChunk{AnswerID: a, Seq: 1, Delta: "200,000 won"},
	)
	whole := room.NewHistory()
	for _, ev := range log {
		if err := whole.Apply(ev); err != nil {
			t.Fatal(err)
		}
	}
	projected := room.NewHistory() // as a read model holds it through version 2
	for _, ev := range log[:3] {
		if err := projected.Apply(ev); err != nil {
			t.Fatal(err)
		}
	}
	bogus := []room.Message{{ID: domain.MustParseUUID("00000000-0000-4000-8000-000000000009"), Role: room.RoleUser, Text: "lost"}}
	tests := []struct {
		name     string
		base     func(context.Context, int64) ([]room.Message, int64, error)
		log      []domain.RecordedEvent
		want     []room.Message
		wantVer  int64
		wantHash string
	}{
		{name: "no base: the whole stream", log: log, want: whole.Messages, wantVer: 4, wantHash: hashAt(4)},
		{name: "a base the stream holds: the stream after it",
			base: func(context.Context, int64) ([]room.Message, int64, error) { return projected.Messages, 2, nil },
			log:  log, want: whole.Messages, wantVer: 4, wantHash: hashAt(4)},
		{name: "a base as fresh as the stream: its hash",
			base: func(context.Context, int64) ([]room.Message, int64, error) { return whole.Messages, 4, nil },
			log:  log, want: whole.Messages, wantVer: 4, wantHash: hashAt(4)},
		{name: "a base ahead of the stream is dropped",
			base: func(context.Context, int64) ([]room.Message, int64, error) { return bogus, 9, nil },
			log:  log, want: whole.Messages, wantVer: 4, wantHash: hashAt(4)},
		{name: "no stream, no base: empty", log: nil, wantVer: domain.NoVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := domaintest.FixedStream{Stream: room.Stream(7), Events: tt.log}
			h, hash, err := wsapi.ProjectedHistory{Base: tt.base, Stream: s}.History(t.Context(), 7)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, h.Messages, cmp.AllowUnexported(room.Message{})); diff != "" {
				t.Errorf("messages (-want +got):\n%s", diff)
			}
			if h.Version != tt.wantVer || hash != tt.wantHash {
				t.Errorf("version %d, hash %q; want %d, %q", h.Version, hash, tt.wantVer, tt.wantHash)
			}
		})
	}
}
