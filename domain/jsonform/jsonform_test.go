package jsonform_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/parleychat/parley/domain/jsonform"
)

var texts = []string{"", "plain", " word", "\n\n", `say "hi"`, `back\slash`, "<b>&amp;", "tab\there", "\u2028sep\u2029",
	"é 漢字 🙂", "\x00\x1f ctl", "\xff bad utf8", "/slash/", "\u007f del", `{"json":1}`, "\ufffd"}

// AppendString writes encoding/json's bytes, and String reads them back
// (unless Marshal changed the value: invalid UTF-8 becomes U+FFFD).
func TestStringsAreEncodingJSONs(t *testing.T) {
	for _, s := range texts {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := jsonform.AppendString([]byte("x"), s); string(got) != "x"+string(want) {
			t.Errorf("AppendString(%q) = %s, want x%s", s, got, want)
		}
		if jsonform.Plain(s) != (string(want) == `"`+s+`"`) {
			t.Errorf("Plain(%q) = %v, but Marshal writes %s", s, jsonform.Plain(s), want)
		}
		var back string
		_ = json.Unmarshal(want, &back)
		again, _ := json.Marshal(back)
		v, n, ok := jsonform.String(string(want) + `,"rest"`)
		if wantOK := string(again) == string(want); ok != wantOK || ok && (v != back || n != len(want)) {
			t.Errorf("String(%s…) = %q, %d, %v; want %q, %d, %v", want, v, n, ok, back, len(want), wantOK)
		}
	}
}

// String and Int refuse what Marshal would not write.
func TestOtherFormsAreRefused(t *testing.T) {
	for _, s := range []string{`"\u0041"`, `"\/"`, `"<"`, "\"a\nb\"", `"unterminated`, `"ends in \"`, `x`, `"\ud800"`} {
		if v, _, ok := jsonform.String(s); ok {
			t.Errorf("String(%s) = %q, ok; Marshal does not write that", s, v)
		}
	}
	for _, s := range []string{"", "-", "01", "-0", "+1", "1e2", "99999999999999999999"} {
		if v, n, ok := jsonform.Int(s); ok && n == len(s) {
			t.Errorf("Int(%q) = %d, the whole of it; Marshal does not write that", s, v)
		}
	}
	for _, s := range []string{"[]", "[1,]", "[1 ,2]", "[1", "[01]", "1"} {
		if v, _, ok := jsonform.Ints[int64](s); ok {
			t.Errorf("Ints(%q) = %v, ok; Marshal does not write that", s, v)
		}
	}
	if v, n, ok := jsonform.Ints[int]("[0,-3,12]}"); !ok || n != 9 || len(v) != 3 || v[1] != -3 {
		t.Errorf(`Ints("[0,-3,12]}") = %v, %d, %v`, v, n, ok)
	}
	if b := jsonform.AppendInts([]byte{}, []int64{0, -3, 12}); string(b) != "[0,-3,12]" {
		t.Errorf("AppendInts = %s", b)
	}
}

// FuzzString: whatever String accepts, encoding/json reads as the same
// value and Marshal writes back byte for byte.
func FuzzString(f *testing.F) {
	for _, s := range texts {
		b, _ := json.Marshal(s)
		f.Add(string(b))
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, n, ok := jsonform.String(s)
		if !ok {
			return
		}
		var back string
		if err := json.Unmarshal([]byte(s[:n]), &back); err != nil || back != v {
			t.Fatalf("String(%q) = %q; encoding/json reads %q (%v)", s, v, back, err)
		}
		if again, _ := json.Marshal(v); string(again) != s[:n] || strings.Count(s[:n], `"`) < 2 {
			t.Fatalf("String(%q) accepted %q, Marshal writes %s", s, s[:n], again)
		}
	})
}
