package privacy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The fast reading of an envelope agrees with encoding/json wherever it
// reads one, and reads every envelope SealText writes.
func TestParseEnvelopeFastAgreesWithJSON(t *testing.T) {
	k, err := NewKey(1, "a1b2c3", bytes.Repeat([]byte{4}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	inputs := []string{
		`{"enc":1,"kid":"k","n":"AAAA","ct":"AAAA"}`,
		`{"enc":1,"kid":"k","n":"AAAA","ct":"AAAA"} `,
		`{"enc":01,"kid":"k","n":"AAAA","ct":"AAAA"}`,
		`{"enc":1,"kid":"k\\"x","n":"AAAA","ct":"AAAA"}`,
		`{"enc":1,"kid":"","n":"AAAA","ct":"AAAA"}`,
		`{"enc":1,"kid":"k","n":"AAA","ct":"AAAA"}`,
		`{"enc":1,"n":"AAAA","kid":"k","ct":"AAAA"}`,
		`{"enc":-1,"kid":"k","n":"AAAA","ct":"AAAA"}`,
		`{"enc":1,"kid":"k","n":"AAAA","ct":"AAAA","x":1}`,
	}
	for i := range 50 {
		inputs = append(inputs, k.SealText(fmt.Sprint("text <&> 안녕 ", i), []byte("ad")))
	}
	for _, in := range inputs {
		fast, ok := parseEnvelopeFast(in)
		var want Envelope
		jsonOK := json.Unmarshal([]byte(in), &want) == nil && want.Enc != 0 && want.Kid != ""
		if ok && (!jsonOK || !cmp.Equal(fast, want)) {
			t.Errorf("parseEnvelopeFast(%s) = %+v; encoding/json: %+v (ok %v)", in, fast, want, jsonOK)
		}
		if got, ok := ParseEnvelope(in); ok != jsonOK || (ok && !cmp.Equal(got, want)) {
			t.Errorf("ParseEnvelope(%s) = %+v, %v; want %+v, %v", in, got, ok, want, jsonOK)
		}
	}
	for _, in := range inputs[len(inputs)-50:] {
		if _, ok := parseEnvelopeFast(in); !ok {
			t.Errorf("SealText's %s is not read the fast way", in)
		}
	}
}

// Envelopes are written without encoding/json's reflection; the bytes
// must be its.
func TestEnvelopeJSONIsEncodingJSONs(t *testing.T) {
	for _, e := range []Envelope{
		{Enc: 1, Kid: "a1b2c3", N: []byte{1, 2, 3}, CT: bytes.Repeat([]byte{0xfb}, 40)},
		{Enc: 1, Kid: "", N: []byte{}, CT: []byte{}},
		{Enc: 12, Kid: "odd \"kid\" <&> \n é", N: []byte{0}, CT: []byte{1}},
		{Enc: 1, Kid: "k", N: nil, CT: []byte{1}},
		{Enc: 1, Kid: "k", N: []byte{1}, CT: nil},
		{Enc: -3, Kid: "k\x7f", N: []byte{1}, CT: []byte{2}},
	} {
		want, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if got := e.appendJSON([]byte("x")); string(got) != "x"+string(want) {
			t.Errorf("appendJSON(%+v) = %s, want x%s", e, got, want)
		}
	}
}

func BenchmarkParseEnvelope(b *testing.B) {
	k, _ := NewKey(1, "a1b2c3d4e5f60718", bytes.Repeat([]byte{4}, KeySize))
	s := k.SealText("a policy answer of some length, as the chat log holds it", []byte("ad"))
	b.Run("fast", func(b *testing.B) {
		for b.Loop() {
			parseEnvelopeFast(s)
		}
	})
	b.Run("json", func(b *testing.B) {
		for b.Loop() {
			var e Envelope
			json.Unmarshal([]byte(s), &e)
		}
	})
}
