package domain_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/parleychat/parley/domain"
)

var (
	prevHex = strings.Repeat("0", 64)
	hashHex = strings.Repeat("ab", 32)
)

func TestChainFieldsRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name, base, stored, wantBase string
	}{
		{"no metadata", "", `{"prev_hash":"` + prevHex + `","hash":"` + hashHex + `"}`, `{}`},
		{"null", "null", `{"prev_hash":"` + prevHex + `","hash":"` + hashHex + `"}`, `{}`},
		{"empty object", "{}", `{"prev_hash":"` + prevHex + `","hash":"` + hashHex + `"}`, `{}`},
		{"empty object with space", "{ }", `{ "prev_hash":"` + prevHex + `","hash":"` + hashHex + `"}`, `{ }`},
		{"fields", `{"user_id":"42","occurred_at":"2026-01-02T03:04:05Z"}`,
			`{"user_id":"42","occurred_at":"2026-01-02T03:04:05Z","prev_hash":"` + prevHex + `","hash":"` + hashHex + `"}`,
			`{"user_id":"42","occurred_at":"2026-01-02T03:04:05Z"}`},
		{"white space around", " \n{\"a\": 1 }\n", `{"a": 1 ,"prev_hash":"` + prevHex + `","hash":"` + hashHex + `"}`, `{"a": 1 }`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := domain.WithChainFields(json.RawMessage(tc.base), prevHex, hashHex)
			if err != nil {
				t.Fatalf("WithChainFields: %v", err)
			}
			if string(got) != tc.stored {
				t.Errorf("WithChainFields = %s, want %s", got, tc.stored)
			}
			if !json.Valid(got) {
				t.Errorf("WithChainFields wrote invalid JSON %s", got)
			}
			var m domain.Metadata
			if err := json.Unmarshal(got, &m); err != nil || m.PrevHash != prevHex || m.Hash != hashHex {
				t.Errorf("as Metadata: %+v, %v; want the chain fields", m, err)
			}
			if h := domain.ChainHash(got); h != hashHex {
				t.Errorf("ChainHash = %q, want %s", h, hashHex)
			}
			base, p, h, ok := domain.SplitChainFields(got)
			if !ok || string(base) != tc.wantBase || p != prevHex || h != hashHex {
				t.Errorf("SplitChainFields = %s, %s, %s, %v; want %s and the hashes", base, p, h, ok, tc.wantBase)
			}
		})
	}
}

func TestWithChainFieldsRejects(t *testing.T) {
	for _, tc := range []struct{ name, base, prev, hash string }{
		{"array", `[1]`, prevHex, hashHex},
		{"string", `"x"`, prevHex, hashHex},
		{"short hash", `{}`, prevHex, "abc"},
		{"upper case hash", `{}`, prevHex, strings.ToUpper(hashHex)},
	} {
		if got, err := domain.WithChainFields(json.RawMessage(tc.base), tc.prev, tc.hash); err == nil {
			t.Errorf("%s: WithChainFields = %s, want an error", tc.name, got)
		}
	}
}

func TestSplitChainFieldsRejects(t *testing.T) {
	good := `{"a":1,"prev_hash":"` + prevHex + `","hash":"` + hashHex + `"}`
	for _, tc := range []struct{ name, meta string }{
		{"none", `{"a":1}`},
		{"empty", ``},
		{"reordered", `{"a":1,"hash":"` + hashHex + `","prev_hash":"` + prevHex + `"}`},
		{"not last", `{"prev_hash":"` + prevHex + `","hash":"` + hashHex + `","a":1}`},
		{"space inside", `{"a":1,"prev_hash": "` + prevHex + `","hash":"` + hashHex + `"}`},
		{"trailing space", good + " "},
		{"leading space", " " + good},
		{"stray comma", `{,"prev_hash":"` + prevHex + `","hash":"` + hashHex + `"}`},
		{"missing comma", `{"a":1"prev_hash":"` + prevHex + `","hash":"` + hashHex + `"}`},
		{"upper case", `{"a":1,"prev_hash":"` + prevHex + `","hash":"` + strings.ToUpper(hashHex) + `"}`},
	} {
		if base, _, _, ok := domain.SplitChainFields(json.RawMessage(tc.meta)); ok {
			t.Errorf("%s: SplitChainFields(%s) = %s, ok; want not ok", tc.name, tc.meta, base)
		}
	}
	if _, _, _, ok := domain.SplitChainFields(json.RawMessage(good)); !ok {
		t.Errorf("SplitChainFields(%s) not ok", good)
	}
}

// TestSizeIgnoresChainFields: chaining never makes an event count more.
func TestSizeIgnoresChainFields(t *testing.T) {
	for _, meta := range []string{"", "null", "{}", "{ }", `{"user_id":"42"}`, " {\"a\":1}\n"} {
		ev := domain.EventData{Type: "T", Data: json.RawMessage(`{"n":1}`), Metadata: json.RawMessage(meta)}
		chained := ev
		var err error
		if chained.Metadata, err = domain.WithChainFields(ev.Metadata, prevHex, hashHex); err != nil {
			t.Fatal(err)
		}
		if chained.Size() > ev.Size() {
			t.Errorf("metadata %q: chained size %d > unchained %d", meta, chained.Size(), ev.Size())
		}
	}
	ev := domain.EventData{Type: "T", Data: json.RawMessage(`{}`), Metadata: json.RawMessage(`{"a":1}`)}
	if got, want := ev.Size(), 1+2+7; got != want {
		t.Errorf("Size = %d, want %d", got, want)
	}
}

func TestChainHashOfUnchainedMetadata(t *testing.T) {
	for _, meta := range []string{"", "{}", `{"user_id":"42"}`, `{"hash":"` + hashHex + `"}`, `{"prev_hash":"x","hash":"` + hashHex + `"}`} {
		if h := domain.ChainHash([]byte(meta)); h != "" {
			t.Errorf("ChainHash(%s) = %q, want none", meta, h)
		}
	}
	if !domain.IsChainHash(hashHex) || domain.IsChainHash(strings.ToUpper(hashHex)) || domain.IsChainHash(hashHex[1:]) {
		t.Error("IsChainHash accepts only 64 lowercase hex digits")
	}
}
