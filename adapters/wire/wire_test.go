package wire

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
)

func TestTime(t *testing.T) {
	seoul := time.FixedZone("KST", 9*3600)
	for _, tc := range []struct {
		in   time.Time
		want string
	}{
		{time.Date(2025, 11, 24, 20, 47, 3, 512_345_678, time.UTC), "2025-11-24T20:47:03.512Z"},
		{time.Date(2025, 11, 25, 5, 47, 3, 0, seoul), "2025-11-24T20:47:03.000Z"},
		{time.Date(2025, 1, 2, 3, 4, 5, 7_000_000, time.UTC), "2025-01-02T03:04:05.007Z"},
	} {
		if got := Time(tc.in); got != tc.want {
			t.Errorf("Time(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestMessageOf(t *testing.T) {
	id := domain.MustParseUUID("0b9c2f4e-8d0a-4a51-9d7e-3c1f4b2a6e10")
	at := time.Date(2025, 11, 25, 5, 47, 3, 512_999_999, time.FixedZone("KST", 9*3600))
	src := []room.Source{{Document: "a.md", ChunkID: "a-0", Score: 0.5, Snippet: "A"}}
	for _, tc := range []struct {
		name string
		in   room.Message
		want string
	}{
		{"user message", room.Message{ID: id, Role: room.RoleUser, Text: "Hi", Status: room.StatusComplete, ClientID: "c7d9e1a2-3b4c-4d5e-8f60-718293a4b5c6", CreatedAt: at, Version: 1},
			`{"id":"0b9c2f4e-8d0a-4a51-9d7e-3c1f4b2a6e10","role":"user","message":"Hi","status":"complete","sources":[],"client_id":"c7d9e1a2-3b4c-4d5e-8f60-718293a4b5c6","created_at":"2025-11-24T20:47:03.512Z","version":1}`},
		{"complete answer", room.Message{ID: id, Role: room.RoleAssistant, Text: "Yes.", Status: room.StatusComplete, Sources: src, CreatedAt: at, Version: 5},
			`{"id":"0b9c2f4e-8d0a-4a51-9d7e-3c1f4b2a6e10","role":"assistant","message":"Yes.","status":"complete","sources":[{"document":"a.md","chunk_id":"a-0","score":0.5,"snippet":"A"}],"created_at":"2025-11-24T20:47:03.512Z","version":5}`},
		{"streaming answer hides sources", room.Message{ID: id, Role: room.RoleAssistant, Text: "Ye", Status: room.StatusStreaming, Sources: src, CreatedAt: at, Version: 3},
			`{"id":"0b9c2f4e-8d0a-4a51-9d7e-3c1f4b2a6e10","role":"assistant","message":"Ye","status":"streaming","sources":[],"created_at":"2025-11-24T20:47:03.512Z","version":3}`},
		{"complete answer without sources", room.Message{ID: id, Role: room.RoleAssistant, Text: "", Status: room.StatusCancelled, CreatedAt: at, Version: 4},
			`{"id":"0b9c2f4e-8d0a-4a51-9d7e-3c1f4b2a6e10","role":"assistant","message":"","status":"cancelled","sources":[],"created_at":"2025-11-24T20:47:03.512Z","version":4}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(MessageOf(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, string(b)); diff != "" {
				t.Errorf("MessageOf (-want +got):\n%s", diff)
			}
			list, _ := json.Marshal(Messages([]room.Message{tc.in}))
			if string(list) != "["+string(b)+"]" {
				t.Errorf("Messages = %s, want [%s]", list, b)
			}
		})
	}
}
