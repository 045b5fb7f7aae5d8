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
	// Every stream folds into a valid state, as chatd's would.
	deleted := 0
	for _, r := range rooms {
		evs, err := store.ReadStream(context.Background(), room.Stream(r.ID), domain.ReadStreamOptions{Limit: 100000})
		if err != nil {
			t.Fatal(err)
		}
		s := room.NewState()
		for _, ev := range evs {
			if err := s.Evolve(ev); err != nil {
				t.Fatalf("room %d: %v", r.ID, err)
			}
		}
		if s.Deleted {
			deleted++
		}
	}
	if deleted != st.Deleted {
		t.Errorf("%d rooms deleted, want %d", deleted, st.Deleted)
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
