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
func sealedService(t *testing.T, raw *inmem.Store, g chat.Generator) (*chat.Service, *privacy.Store) {
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
