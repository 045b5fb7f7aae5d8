package chat_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/adapters/inmem"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/chat"
	"github.com/parleychat/parley/domain/room"
)

func TestAuditRecordsTheRead(t *testing.T) {
	f := newFixture(t, nil, &gen{tokens: []string{"ok"}}, "a")
	r, err := f.svc.CreateRoom(t.Context(), "42", "Housing")
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.svc.Audit(t.Context(), r.ID, "7", room.InterfaceREST)
	if err != nil {
		t.Fatalf("Audit: %v", err)
	}
	if got.ID != r.ID || got.Owner != "42" || got.Title != "Housing" || got.Version != 1 {
		t.Errorf("Audit = %+v, want room %d of 42 at version 1", got, r.ID)
	}
	evs, err := f.store.ReadStream(t.Context(), room.Stream(r.ID), domain.ReadStreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[1].Type != room.TypeAuditAccessed {
		t.Fatalf("stream %v, want RoomCreated, AuditAccessed", types(evs))
	}
	p, err := room.Decode(evs[1], false)
	if err != nil {
		t.Fatal(err)
	}
	a := p.(room.AuditAccessed)
	if a.UserID != "7" || a.Interface != room.InterfaceREST || a.At.IsZero() || a.At.Location() != time.UTC {
		t.Errorf("recorded %+v", a)
	}
	var meta domain.Metadata
	if err := json.Unmarshal(evs[1].Metadata, &meta); err != nil || meta.UserID != "7" || !meta.OccurredAt.Equal(a.At) {
		t.Errorf("metadata %s (%v)", evs[1].Metadata, err)
	}
	// The owner's view is unchanged.
	if _, err := f.svc.Room(t.Context(), r.ID, "42"); err != nil {
		t.Errorf("owner after an audit: %v", err)
	}
}

func TestAuditOfMissingOrDeletedRoomRecordsNothing(t *testing.T) {
	f := newFixture(t, nil, &gen{}, "a")
	if _, err := f.svc.Audit(t.Context(), 12345, "7", room.InterfaceWebSocket); !errors.Is(err, room.ErrNotFound) {
		t.Errorf("missing room: %v, want room.ErrNotFound", err)
	}
	if _, err := f.store.ReadStream(t.Context(), room.Stream(12345), domain.ReadStreamOptions{}); !errors.Is(err, domain.ErrStreamNotFound) {
		t.Errorf("the audit of a missing room created its stream: %v", err)
	}
	r, err := f.svc.CreateRoom(t.Context(), "42", "Housing")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Delete(t.Context(), r.ID, "42"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Audit(t.Context(), r.ID, "7", room.InterfaceWebSocket); !errors.Is(err, room.ErrNotFound) {
		t.Errorf("deleted room: %v, want room.ErrNotFound", err)
	}
	evs, _ := f.store.ReadStream(t.Context(), room.Stream(r.ID), domain.ReadStreamOptions{})
	if diff := cmp.Diff([]string{room.TypeRoomCreated, room.TypeRoomDeleted}, types(evs)); diff != "" {
		t.Errorf("stream (-want +got):\n%s", diff)
	}
}

// An audit appended in the middle of a streaming answer does not disturb it:
// the pipeline's exact-version append conflicts, reloads and goes on.
func TestAuditDuringAnAnswer(t *testing.T) {
	g := &gen{tokens: []string{"Up ", "to ", "200,000 ", "won."}, gate: make(chan struct{}, 10)}
	f := newFixture(t, nil, g, "a")
	r, err := f.svc.CreateRoom(t.Context(), "42", "Housing")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Post(t.Context(), r.ID, "42", "How much?", ""); err != nil {
		t.Fatal(err)
	}
	g.gate <- struct{}{}
	waitFor(t, f.store, r.ID, room.TypeAnswerChunk)
	if _, err := f.svc.Audit(t.Context(), r.ID, "7", room.InterfaceWebSocket); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		g.gate <- struct{}{}
	}
	evs := waitFor(t, f.store, r.ID, room.TypeAnswerCompleted)
	h := room.NewHistory()
	for _, ev := range evs {
		if err := h.Apply(ev); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(h.Messages); n != 2 || h.Messages[1].Text != "Up to 200,000 won." || h.Messages[1].Status != room.StatusComplete {
		t.Errorf("history %+v", h.Messages)
	}
}

func TestRecordAccessRefusesBadInput(t *testing.T) {
	store := inmem.New(nil)
	id := domain.MustParseUUID("00000000-0000-4000-8000-0000000000aa")
	tests := []struct {
		name string
		a    room.AuditAccessed
		code string
	}{
		{"no user", room.AuditAccessed{Interface: room.InterfaceCLI}, domain.EINVALID},
		{"unknown interface", room.AuditAccessed{UserID: "7", Interface: "grpc"}, domain.EINVALID},
		{"missing room", room.AuditAccessed{UserID: "7", Interface: room.InterfaceCLI}, domain.ENOTFOUND},
	}
	for _, tc := range tests {
		_, err := chat.RecordAccess(t.Context(), store, 5, id, tc.a)
		if got := domain.ErrorCode(err); got != tc.code {
			t.Errorf("%s: code %q (%v), want %q", tc.name, got, err, tc.code)
		}
	}
}
