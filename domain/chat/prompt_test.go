package chat_test

import (
	"reflect"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/domain/chat"
)

func TestCanonicalPrompt(t *testing.T) {
	p := chat.Prompt{
		System:   "Be brief <b>&</b>.",
		Summary:  "",
		History:  []chat.Turn{{Role: chat.RoleUser, Content: "hi"}},
		Context:  []chat.Passage{{Document: "a.md", Title: "A", ChunkID: "c-1", Score: 0.8125, Text: "월세 \"지원\""}},
		Question: "q?",
	}
	got := string(chat.CanonicalPrompt(p))
	want := `{"system":"Be brief <b>&</b>.","summary":"","history":[{"role":"user","content":"hi"}],` +
		`"context":[{"document":"a.md","title":"A","chunk_id":"c-1","score":0.8125,"text":"월세 \"지원\""}],"question":"q?"}`
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("CanonicalPrompt (-got +want):\n%s", diff)
	}
	if got := string(chat.CanonicalPrompt(chat.Prompt{})); got != `{"system":"","summary":"","history":[],"context":[],"question":""}` {
		t.Errorf("CanonicalPrompt of the empty prompt = %s", got)
	}
	// The hash is the hex SHA-256 of the canonical form (computed apart,
	// with Python's hashlib), and it changes with any part of the prompt.
	const golden = "701d1164e01b2d03af2952d9347d3265bddeb6466a0e346c8b1544fccbd257cd"
	h := chat.PromptHash(p)
	if h != golden {
		t.Fatalf("PromptHash = %s, want %s", h, golden)
	}
	q := p
	q.Context = append([]chat.Passage(nil), p.Context...)
	q.Context[0].Score = 0.8126
	if chat.PromptHash(q) == h {
		t.Error("PromptHash ignores a passage's score")
	}
}

// TestCanonicalPromptCoversEveryField fails when Prompt, Turn or Passage
// gain a field: add it to CanonicalPrompt (a new key) so that PromptHash
// keeps recording everything the generator is given.
func TestCanonicalPromptCoversEveryField(t *testing.T) {
	fields := func(v any) []string {
		var out []string
		ty := reflect.TypeOf(v)
		for i := range ty.NumField() {
			out = append(out, ty.Field(i).Name)
		}
		return out
	}
	tests := []struct {
		v    any
		want []string
	}{
		{chat.Prompt{}, []string{"System", "Summary", "History", "Context", "Question"}},
		{chat.Turn{}, []string{"Role", "Content"}},
		{chat.Passage{}, []string{"Document", "Title", "ChunkID", "Score", "Text"}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(fields(tt.v), tt.want); diff != "" {
			t.Errorf("%T fields changed; update CanonicalPrompt and this list (-got +want):\n%s", tt.v, diff)
		}
	}
}

func TestStripMarkup(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain text and citations stay", "Up to 200,000 won [1][2]. See [3] (page 4).", "Up to 200,000 won [1][2]. See [3] (page 4)."},
		{"image keeps its alt text", "Look ![chart of rent](https://evil.example/p.png?d=secret) here", "Look chart of rent here"},
		{"image without alt text", "![](http://evil.example/x.gif)", ""},
		{"link keeps its text", "Apply on [the portal](https://evil.example/apply \"title\").", "Apply on the portal."},
		{"reference link and definition", "Apply on [the portal][p].\n[p]: https://evil.example/apply\nDone.", "Apply on the portal.\n\nDone."},
		{"reference image", "![logo][l]", "logo"},
		{"HTML image and anchor", `<img src="https://evil.example/p.png"> and <a href="https://evil.example">click</a>`, " and click"},
		{"autolink", "Mail <https://evil.example/q> now", "Mail (link removed) now"},
		{"bare URLs", "Go to https://evil.example/a?b=c, or www.evil.example/x.", "Go to (link removed), or (link removed)."},
		{"words before a colon are not schemes", "Data: 5 items. Note: http: alone is no URL.", "Data: 5 items. Note: http: alone is no URL."},
		{"script URLs", "javascript:alert(1) and data:image/png;base64,AAAA", "(link removed)(1) and (link removed)"},
		{"a URL in parentheses", "(see https://evil.example/a)", "(see (link removed))"},
		{"Korean text", "자세한 내용은 [누리집](https://evil.example)에서 확인하세요.", "자세한 내용은 누리집에서 확인하세요."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := chat.StripMarkup(tt.in); got != tt.want {
				t.Errorf("StripMarkup(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
