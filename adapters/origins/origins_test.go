package origins

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in      []string
		wantErr string
	}{
		{in: nil},
		{in: []string{"https://app.example", " http://localhost:5173 ", "*", ""}},
		{in: []string{"https://app.example/"}},
		{in: []string{"app.example"}, wantErr: `"app.example"`},
		{in: []string{"https://app.example/chat", "ftp://x", "https://u@x"}, wantErr: `"https://app.example/chat", "ftp://x", "https://u@x"`},
	} {
		_, err := Parse(tc.in)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("Parse(%q) = %v, want no error", tc.in, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("Parse(%q) = %v, want an error naming %s", tc.in, err, tc.wantErr)
		}
	}
}

func TestCheck(t *testing.T) {
	list := MustParse("https://App.example", "http://localhost:5173/")
	for _, tc := range []struct {
		list         List
		origin, host string
		want         bool
	}{
		{list, "", "chat.example", true},                                      // not a browser
		{list, "https://app.example", "chat.example", true},                   // listed
		{list, "HTTPS://APP.EXAMPLE", "chat.example", true},                   // case-insensitive
		{list, "http://localhost:5173", "127.0.0.1:8080", true},               // listed, trailing slash in the list
		{list, "http://app.example", "chat.example", false},                   // another scheme is another origin
		{list, "https://app.example:444", "chat.example", false},              // another port too
		{list, "https://evil.example", "chat.example", false},                 // foreign
		{list, "null", "chat.example", false},                                 // sandboxed frames, file: pages
		{list, "http://localhost:8080", "localhost:8080", true},               // the server's own page
		{list, "http://LOCALHOST:8080", "localhost:8080", true},               // the server's own page, any case
		{list, "http://localhost:8081", "localhost:8080", false},              // another port on the same host
		{List{}, "http://127.0.0.1:8080", "127.0.0.1:8080", true},             // no list: own pages only
		{List{}, "https://app.example", "chat.example", false},                // no list: nobody else
		{MustParse("*"), "https://anything.example", "chat.example", true},    // wildcard
		{MustParse("*"), "null", "chat.example", true},                        // wildcard allows even null
		{MustParse("https://a.example", "*"), "https://b.example", "c", true}, // wildcard among others
	} {
		if got := tc.list.Check(tc.origin, tc.host); got != tc.want {
			t.Errorf("%v.Check(%q, %q) = %v, want %v", tc.list, tc.origin, tc.host, got, tc.want)
		}
	}
}
