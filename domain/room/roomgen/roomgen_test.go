package roomgen_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/parleychat/parley/adapters/inmem"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
	"github.com/parleychat/parley/domain/room/roomgen"
)

func TestGenerateIsDeterministicAndRealistic(t *testing.T) {
	cfg := roomgen.Config{Rooms: 400, Seed: 7}
	a, st := roomgen.Generate(cfg)
	b, _ := roomgen.Generate(cfg)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("the same seed gave another history")
	}
	c, _ := roomgen.Generate(roomgen.Config{Rooms: 400, Seed: 8})
	if reflect.DeepEqual(a, c) {
		t.Error("another seed gave the same history")
	}
	t.Logf("stats: %+v", st)
	if st.Rooms != 400 || st.Completed == 0 || st.Failed == 0 || st.Cancelled == 0 || st.Open == 0 || st.Deleted == 0 {
		t.Errorf("stats %+v: want every kind of ending and deleted rooms", st)
	}
	if per := float64(st.Chunks) / float64(st.Questions); per < 20 || per > 40 {
		t.Errorf("%.1f chunks per answer, want about 30", per)
	}
	n := 0
	for _, r := range a {
		n += r.Events()
		for _, ap := range r.Appends {
			if len(ap) == 0 || len(ap) > 18 {
				t.Fatalf("room %d: an append of %d events", r.ID, len(ap))
			}
		}
	}
	if n != st.Events {
		t.Errorf("rooms hold %d events, stats say %d", n, st.Events)
	}

	_, st = roomgen.Generate(roomgen.Config{Events: 5000, Seed: 1})
	if st.Events < 5000 || st.Events > 5500 {
		t.Errorf("asked for 5000 events, got %d", st.Events)
	}
}

func TestWriteFollowsTheRoomAggregate(t *testing.T) {
	rooms, st := roomgen.Generate(roomgen.Config{Rooms: 60, Seed: 3})
	store := inmem.New(time.Now)
	n, err := roomgen.Write(context.Background(), store, rooms, 4, 5, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(st.Events) {
		t.Errorf("wrote %d events, want %d", n, st.Events)
	}
	// Every stream as stored folds as generated.
	deleted, open := 0, 0
	for _, r := range rooms {
		evs, err := store.ReadStream(context.Background(), room.Stream(r.ID), domain.ReadStreamOptions{Limit: 100000})
		if err != nil {
			t.Fatal(err)
		}
		s := fold(t, r.ID, evs)
		if s.Deleted {
			deleted++
		}
		if s.Open != nil {
			open++
		}
	}
	if deleted != st.Deleted || open != st.Open {
		t.Errorf("%d rooms deleted and %d left streaming, want %d and %d", deleted, open, st.Deleted, st.Open)
	}
	// The rooms interleave in the global log: whichever writer runs first
	// opens its 5 active rooms with a round of single-event appends, so the
	// first 200 events hold at least 5 rooms however the writers are
	// scheduled (more writers running at once only add rooms).
	all, err := store.ReadAll(context.Background(), domain.ReadAllOptions{Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	streams := map[string]bool{}
	for _, ev := range all {
		streams[ev.Stream] = true
	}
	if len(streams) < 5 {
		t.Errorf("the first 200 events come from %d rooms, want them interleaved", len(streams))
	}
}

// TestRoomsKeepTheAggregatesRules: generated rooms keep the rules the
// room aggregate enforces on chatd's commands: one answer at a time,
// chunks in sequence, endings only for the open answer, and no answer
// left open by a delete. Enough rooms that every kind of ending and
// deletion comes up many times.
func TestRoomsKeepTheAggregatesRules(t *testing.T) {
	rooms, _ := roomgen.Generate(roomgen.Config{Rooms: 300, Seed: 1})
	for _, r := range rooms {
		var evs []domain.RecordedEvent
		for _, a := range r.Appends {
			for _, e := range a {
				evs = append(evs, domain.RecordedEvent{ID: e.ID, Stream: room.Stream(r.ID), Version: int64(len(evs)), Type: e.Type, Data: e.Data, Metadata: e.Metadata})
			}
		}
		fold(t, r.ID, evs)
	}
}

// fold folds a room's events, failing the test at the first that breaks a
// rule of the aggregate.
func fold(t *testing.T, id int64, evs []domain.RecordedEvent) *room.State {
	t.Helper()
	s := room.NewState()
	for _, ev := range evs {
		e, err := room.Decode(ev, false)
		if err != nil {
			t.Fatal(err)
		}
		if why := breaks(s, e); why != "" {
			t.Fatalf("room %d, version %d (%s): %s", id, ev.Version, ev.Type, why)
		}
		if err := s.Evolve(ev); err != nil {
			t.Fatalf("room %d: %v", id, err)
		}
	}
	return s
}

// breaks says which rule of the room aggregate e breaks in state s, or "".
func breaks(s *room.State, e room.Event) string {
	switch e := e.(type) {
	case room.MessagePosted:
		if s.Open != nil {
			return "a message while an answer is open"
		}
	case room.RoomDeleted:
		if s.Open != nil {
			return "deleted with an answer still open"
		}
	case room.AnswerStarted:
		if s.Open != nil {
			return "a second answer started"
		}
	case room.AnswerChunk:
		if s.Open == nil || s.Open.AnswerID != e.AnswerID || s.Open.NextSeq != e.Seq {
			return "a chunk out of sequence or for no open answer"
		}
	case room.AnswerCompleted, room.AnswerFailed, room.AnswerCancelled:
		if s.Open == nil {
			return "an ending with no open answer"
		}
	}
	return ""
}
