package main

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/adapters/postgres/pgtest"
	"github.com/parleychat/parley/docs"
	"github.com/parleychat/parley/docs/docstest"
)

// TestMessageShape: the WebSocket history frame and GET
// /api/rooms/{id}/messages show a message as one and the same object, and
// both match the Message schema of both documents, created_at's form
// included.
func TestMessageShape(t *testing.T) {
	c := startChatd(t, pgtest.NewDatabase(t), nil)
	tok := token(t, "42", time.Hour)
	id := c.createRoom(t, tok)
	ws := connect(t, c.wsURL(id, "token="+tok))
	readFrame(t, ws)
	send(t, ws, map[string]any{"type": "message", "message": "What is youth rent support?", "client_id": "8f0e6a1c-0000-4000-8000-000000000002"})
	readAnswer(t, ws)

	history := readFrame(t, connect(t, c.wsURL(id, "token="+tok)))["messages"].([]any)
	var page struct {
		Messages []any `json:"messages"`
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.api(t, "GET", fmt.Sprintf("/api/rooms/%d/messages", id), tok, "", &page)
		if len(page.Messages) == 2 && page.Messages[0].(map[string]any)["status"] == "complete" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("REST never showed the answer: %v", page.Messages)
		}
		time.Sleep(20 * time.Millisecond)
	}
	rest := slices.Clone(page.Messages)
	slices.Reverse(rest) // REST pages newest first, history is oldest first
	if got, want := mustJSON(rest), mustJSON(history); got != want {
		t.Errorf("REST and history show the messages differently:\nREST    %s\nhistory %s", got, want)
	}
	if u := history[0].(map[string]any); u["client_id"] != "8f0e6a1c-0000-4000-8000-000000000002" {
		t.Errorf("user message %v: want its client_id", u)
	}

	for _, d := range []struct{ file, schema string }{
		{"asyncapi.yaml", "#/components/schemas/Message"},
		{"openapi.yaml", "#/components/schemas/Message"},
	} {
		doc, err := docstest.Load(docs.FS, d.file)
		if err != nil {
			t.Fatal(err)
		}
		schema, err := docstest.Resolve(doc, d.schema)
		if err != nil {
			t.Fatal(err)
		}
		props := schema.(map[string]any)["properties"].(map[string]any)
		for i, m := range history {
			for _, err := range docstest.Validate(doc, schema, docstest.FromJSON(m), fmt.Sprintf("message %d", i)) {
				t.Errorf("%s: %v", d.file, err)
			}
			for k := range m.(map[string]any) {
				if _, ok := props[k]; !ok {
					t.Errorf("%s: message %d has field %q, which the Message schema does not document", d.file, i, k)
				}
			}
		}
	}
}

// TestPageSwitches: the page is served unless PARLEY_WEB=false, and the
// development login's endpoint exists only on the development secret.
func TestPageSwitches(t *testing.T) {
	db := pgtest.NewDatabase(t)
	for _, tc := range []struct {
		name               string
		env                map[string]string
		wantPage, wantDev  int
		wantDevLoginOnPage bool
	}{
		{"a real secret", nil, 200, 404, false},
		{"the development secret", map[string]string{"PARLEY_JWT_SECRET": ""}, 200, 201, true},
		{"PARLEY_WEB=false", map[string]string{"PARLEY_WEB": "false", "PARLEY_JWT_SECRET": ""}, 404, 201, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := startChatd(t, db, tc.env)
			resp, err := http.Get(c.base + "/")
			if err != nil {
				t.Fatal(err)
			}
			page, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantPage {
				t.Errorf("GET / = %d, want %d", resp.StatusCode, tc.wantPage)
			}
			if got := strings.Contains(string(page), `content="true"`); got != tc.wantDevLoginOnPage {
				t.Errorf("the page offers the development login: %v, want %v", got, tc.wantDevLoginOnPage)
			}
			var tok struct {
				Token string `json:"token"`
			}
			if code := c.api(t, "POST", "/api/dev/token", "", `{"user_id":"42"}`, &tok); code != tc.wantDev {
				t.Errorf("POST /api/dev/token = %d, want %d", code, tc.wantDev)
			}
			if tc.wantDev == 201 {
				if code := c.api(t, "GET", "/api/rooms", tok.Token, "", nil); code != http.StatusOK {
					t.Errorf("GET /api/rooms with the development token = %d, want 200", code)
				}
			}
		})
	}
}
