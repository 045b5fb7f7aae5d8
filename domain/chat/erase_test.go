package chat_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/parleychat/parley/adapters/inmem"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/chat"
	"github.com/parleychat/parley/domain/privacy"
	"github.com/parleychat/parley/domain/privacy/privacytest"
	"github.com/parleychat/parley/domain/room"
)

// sealedService runs a Service over a sealing store over raw, as chatd
// wires it.
func sealedService(t *testing.T, raw *inmem.Store, g chat.Generator, owned ...chat.OwnedRooms) (*chat.Service, *privacy.Store) {
	t.Helper()
	kek, err := privacy.NewKEK(bytes.Repeat([]byte{9}, privacy.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	ring, err := privacy.NewKeyring(privacytest.NewMemKeys(), privacy.KEKs{kek}, privacy.KeyringConfig{})
	if err != nil {
		t.Fatal(err)
	}
	store := privacy.NewStore(raw, ring)
	svc := chat.NewService(chat.Config{Instance: "a", ShutdownGrace: 50 * time.Millisecond},
		chat.Deps{Store: store, Generator: g, Now: time.Now, Random: rand.Reader, Keys: ring})
	if len(owned) > 0 {
		svc = chat.NewService(chat.Config{Instance: "a", ShutdownGrace: 50 * time.Millisecond},
			chat.Deps{Store: store, Generator: g, Now: time.Now, Random: rand.Reader, Keys: ring, Owned: owned[0]})
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() { stop(); <-done })
	return svc, store
}

func TestEraseRacingAStreamingAnswer(t *testing.T) {
	const marker = "MARKER-erase-91c2"
	g := &gen{tokens: []string{"you wrote " + marker, " and more", " and more"}, gate: make(chan struct{})}
	raw := inmem.New(nil)
	svc, store := sealedService(t, raw, g)
	ctx := t.Context()
	r, err := svc.CreateRoom(ctx, "42", "title "+marker)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Post(ctx, r.ID, "42", "my debt is "+marker, ""); err != nil {
		t.Fatal(err)
	}
	g.gate <- struct{}{} // one chunk out, the answer still streaming
	waitFor(t, store, r.ID, room.TypeAnswerChunk)

	for _, tc := range []struct {
		name  string
		e     chat.Eraser
		want  bool
		check func(error) bool
	}{
		{"a stranger", chat.Eraser{By: "43", Owner: "43", Reason: room.ErasedByOwner}, false, func(err error) bool { return errors.Is(err, room.ErrForbidden) }},
		{"the owner", chat.Eraser{By: "42", Owner: "42", Reason: room.ErasedByOwner}, true, func(err error) bool { return err == nil }},
		{"again", chat.Eraser{By: "ops", Reason: "ticket 7"}, false, func(err error) bool { return err == nil }},
	} {
		got, err := svc.Erase(ctx, r.ID, tc.e)
		if got != tc.want || !tc.check(err) {
			t.Fatalf("%s: Erase = %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
	if _, err := svc.Erase(ctx, r.ID+1, chat.Eraser{By: "ops", Reason: "x"}); !errors.Is(err, room.ErrNotFound) {
		t.Errorf("erase of a room that never was: %v, want not found", err)
	}
	close(g.gate) // the generator would go on; its pipeline must write nothing more

	evs := waitFor(t, store, r.ID, room.TypeRoomErased)
	time.Sleep(50 * time.Millisecond)
	stored, err := raw.ReadStream(ctx, room.Stream(r.ID), domain.ReadStreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range stored {
		if bytes.Contains(ev.Data, []byte(marker)) {
			t.Errorf("the log holds %s in plaintext: %s", ev.Type, ev.Data)
		}
	}
	n := len(stored)
	if stored[n-1].Type != room.TypeRoomErased || stored[n-2].Type != room.TypeAnswerFailed {
		t.Fatalf("the log ends %s, %s; want AnswerFailed, RoomErased", stored[n-2].Type, stored[n-1].Type)
	}
	var failed room.AnswerFailed
	if err := json.Unmarshal(stored[n-2].Data, &failed); err != nil || failed.Reason != room.ReasonErased || failed.Text != "" {
		t.Errorf("the answer ended %+v, %v; want reason erased and no text", failed, err)
	}
	for _, ev := range evs {
		if bytes.Contains(ev.Data, []byte(marker)) {
			t.Errorf("reading the erased room shows %s: %s", ev.Type, ev.Data)
		}
	}
	if _, err := svc.Post(ctx, r.ID, "42", "hello again", ""); !errors.Is(err, room.ErrNotFound) {
		t.Errorf("post to an erased room: %v, want not found", err)
	}
	if info, err := svc.Room(ctx, r.ID, "42"); !errors.Is(err, room.ErrNotFound) {
		t.Errorf("the erased room reads %+v, %v; want not found", info, err)
	}
}

// ownedRooms is a hand-written OwnedRooms: the rooms by owner.
type ownedRooms map[string][]int64

func (o ownedRooms) RoomIDsOf(_ context.Context, owner string) ([]int64, error) { return o[owner], nil }

func TestDeleteErasesAndEraseUser(t *testing.T) {
	owned := ownedRooms{}
	svc, store := sealedService(t, inmem.New(nil), &gen{tokens: []string{"ok"}}, owned)
	ctx := t.Context()
	var mine []int64
	for range 3 {
		r, err := svc.CreateRoom(ctx, "42", "room")
		if err != nil {
			t.Fatal(err)
		}
		mine = append(mine, r.ID)
		owned["42"] = append(owned["42"], r.ID)
	}
	other, _ := svc.CreateRoom(ctx, "43", "theirs")
	if err := svc.Delete(ctx, mine[0], "42"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, store, mine[0], room.TypeRoomErased)
	if err := svc.Delete(ctx, mine[0], "42"); !errors.Is(err, room.ErrNotFound) {
		t.Errorf("deleting an erased room: %v, want not found", err)
	}
	if err := svc.Delete(ctx, other.ID, "42"); !errors.Is(err, room.ErrForbidden) {
		t.Errorf("deleting someone else's room: %v, want forbidden", err)
	}
	owned["42"] = owned["42"][:3]
	got, err := svc.EraseUser(ctx, "42", chat.Eraser{By: "42", Reason: room.ErasedByOwner})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != mine[1] || got[1] != mine[2] {
		t.Errorf("EraseUser erased %v, want %v (the first was erased already)", got, mine[1:])
	}
	owned["42"] = append(owned["42"], other.ID) // a stale read model listing another's room
	if _, err := svc.EraseUser(ctx, "42", chat.Eraser{By: "42", Reason: room.ErasedByOwner}); !errors.Is(err, room.ErrForbidden) {
		t.Errorf("EraseUser over another's room: %v, want forbidden", err)
	}
	if info, err := svc.Room(ctx, other.ID, "43"); err != nil || info.Erased {
		t.Errorf("the other owner's room: %+v, %v; want it untouched", info, err)
	}
}

// idleList is a hand-written IdleRooms: the rooms idle before a time,
// read from the log's state through the service, as a read model would.
type idleList struct {
	svc   *chat.Service
	rooms map[int64]time.Time // room -> last activity
	asked []time.Time
}

func (l *idleList) IdleRooms(ctx context.Context, before time.Time, limit int) ([]int64, error) {
	l.asked = append(l.asked, before)
	var out []int64
	for id, at := range l.rooms {
		if at.Before(before) && len(out) < limit {
			if info, err := l.svc.Room(ctx, id, "42"); err == nil && !info.Erased {
				out = append(out, id)
			}
		}
	}
	return out, nil
}

func TestEraseIdle(t *testing.T) {
	svc, store := sealedService(t, inmem.New(nil), &gen{tokens: []string{"ok"}})
	ctx := t.Context()
	now := time.Now()
	l := &idleList{svc: svc, rooms: map[int64]time.Time{}}
	var old, fresh int64
	for i, at := range []time.Time{now.AddDate(-2, 0, 0), now.Add(-time.Hour)} {
		r, err := svc.CreateRoom(ctx, "42", "room")
		if err != nil {
			t.Fatal(err)
		}
		l.rooms[r.ID] = at
		if i == 0 {
			old = r.ID
		} else {
			fresh = r.ID
		}
	}
	n, err := svc.EraseIdle(ctx, l, 365*24*time.Hour)
	if err != nil || n != 1 {
		t.Fatalf("EraseIdle = %d, %v; want 1 room erased", n, err)
	}
	if got := l.asked[0]; got.After(now.AddDate(-1, 0, 0).Add(time.Minute)) || got.Before(now.AddDate(-1, 0, 0).Add(-time.Minute)) {
		t.Errorf("asked for rooms idle before %s, want a year ago", got)
	}
	evs := waitFor(t, store, old, room.TypeRoomErased)
	var e room.RoomErased
	if err := json.Unmarshal(evs[len(evs)-1].Data, &e); err != nil || e.Reason != room.ErasedByRetention || e.ErasedBy != chat.RetentionEraser {
		t.Errorf("RoomErased = %+v, %v; want reason retention", e, err)
	}
	if info, err := svc.Room(ctx, fresh, "42"); err != nil || info.Erased {
		t.Errorf("the active room: %+v, %v; want it kept", info, err)
	}
	if n, err := svc.EraseIdle(ctx, l, 365*24*time.Hour); err != nil || n != 0 {
		t.Errorf("second run = %d, %v; want nothing more", n, err)
	}
}
