package strictjson_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/parleychat/parley/adapters/strictjson"
)

type frame struct {
	Type     string  `json:"type"`
	Message  *string `json:"message"`
	ClientID string  `json:"client_id,omitempty"`
	Ignored  string  `json:"-"`
	Nested   *struct {
		Name string `json:"name"`
	} `json:"nested,omitempty"`
	Any map[string]any `json:"any,omitempty"`
}

func TestDecodeObject(t *testing.T) {
	msg := func(s string) *string { return &s }
	tests := []struct {
		name    string
		in      string
		want    frame
		refusal string // a part of the error's text; "" for success
	}{
		{"plain", `{"type":"message","message":"hi","client_id":"c"}`, frame{Type: "message", Message: msg("hi"), ClientID: "c"}, ""},
		{"white space", " \n{\"message\":\"hi\"}\n ", frame{Message: msg("hi")}, ""},
		{"escaped pair", `{"message":"\ud83d\ude00"}`, frame{Message: msg("😀")}, ""},
		{"nested", `{"nested":{"name":"x"}}`, frame{Nested: &struct {
			Name string `json:"name"`
		}{Name: "x"}}, ""},
		{"map keys are free", `{"any":{"Whatever":1}}`, frame{Any: map[string]any{"Whatever": float64(1)}}, ""},

		{"key in another case", `{"type":"ping","Type":"message","message":"x"}`, frame{}, `key "Type" must be spelt "type"`},
		{"only a key in another case", `{"Message":"x"}`, frame{}, `key "Message" must be spelt "message"`},
		{"duplicate key", `{"type":"ping","type":"message"}`, frame{}, `key "type" appears twice`},
		{"duplicate key in a map", `{"any":{"a":1,"a":2}}`, frame{}, `key "any.a" appears twice`},
		{"unknown field", `{"message":"x","extra":1}`, frame{}, `unknown field "extra"`},
		{"unknown nested field", `{"nested":{"name":"x","Name":"y"}}`, frame{}, `key "nested.Name" must be spelt "name"`},
		{"a field tagged -", `{"Ignored":"x"}`, frame{}, `unknown field "Ignored"`},
		{"invalid UTF-8", "{\"message\":\"\xc3\x28\"}", frame{}, "not valid UTF-8"},
		{"lone high surrogate", `{"message":"\ud800"}`, frame{}, "lone surrogate"},
		{"lone low surrogate", `{"message":"a\udc00b"}`, frame{}, "lone surrogate"},
		{"high surrogate then a letter", `{"message":"\ud800\u0041"}`, frame{}, "lone surrogate"},
		{"not an object", `["message"]`, frame{}, "must be an object"},
		{"empty", ``, frame{}, "must be an object"},
		{"two objects", `{"message":"a"}{"message":"b"}`, frame{}, "data after the object"},
		{"truncated", `{"message":"a"`, frame{}, "unexpected end"},
		{"wrong type", `{"message":5}`, frame{}, `field "message" must be a string, not a number`},
		{"broken", `{"message" "a"}`, frame{}, "invalid JSON"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got frame
			err := strictjson.DecodeObject([]byte(tc.in), &got)
			if tc.refusal == "" {
				if err != nil {
					t.Fatalf("DecodeObject: %v", err)
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("decoded (-want +got):\n%s", diff)
				}
				return
			}
			var se *strictjson.Error
			if !errors.As(err, &se) || !strings.Contains(err.Error(), tc.refusal) {
				t.Fatalf("DecodeObject(%s) = %v, want an *Error saying %q", tc.in, err, tc.refusal)
			}
			if strings.Contains(err.Error(), "main.") || strings.Contains(err.Error(), "strictjson_test") {
				t.Errorf("the refusal %q names a Go type", err)
			}
		})
	}
}

// FuzzDecodeObject: whatever the input, DecodeObject returns (nil or an
// *Error) without panicking, and what it accepts encoding/json accepts too.
func FuzzDecodeObject(f *testing.F) {
	for _, s := range []string{`{"type":"ping"}`, `{"type":"ping","Type":"message"}`, `{"message":"\ud800"}`, `{"any":{"a":[1,{"b":2}]}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v frame
		err := strictjson.DecodeObject(data, &v)
		var se *strictjson.Error
		if err != nil && !errors.As(err, &se) {
			t.Fatalf("error %v is not an *Error", err)
		}
	})
}
