package room_test

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
)

// checkParseChunk asserts ParseChunk's promise on data: when it accepts,
// Encode of what it returns is data byte for byte, encoding/json reads the
// same chunk, and the content starts at the delta.
func checkParseChunk(t *testing.T, data []byte) (room.AnswerChunk, bool) {
	t.Helper()
	c, at, ok := room.ParseChunk(data)
	if !ok {
		return c, false
	}
	_, again, err := room.Encode(c)
	if err != nil || !bytes.Equal(again, data) {
		t.Fatalf("ParseChunk accepted %q, but Encode of its result is %q (%v)", data, again, err)
	}
	var slow room.AnswerChunk
	if err := json.Unmarshal(data, &slow); err != nil || !reflect.DeepEqual(slow, c) {
		t.Fatalf("ParseChunk(%q) = %#v, encoding/json reads %#v (%v)", data, c, slow, err)
	}
	if !bytes.HasPrefix(data[at:], []byte(`"delta":`)) {
		t.Fatalf("ParseChunk(%q): content at %d is %q", data, at, data[at:])
	}
	return c, true
}

// TestParseChunkReadsWhatEncodeWrites encodes chunks of every kind of text
// an answer carries (escapes, HTML characters, separators, invalid UTF-8,
// several deltas), expects encoding/json's bytes, and expects ParseChunk
// to read each back.
func TestParseChunkReadsWhatEncodeWrites(t *testing.T) {
	id := domain.MustParseUUID("0b9f6f0e-3a0c-4e7e-9a55-3c9d2f1e8a77")
	at := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	pieces := []string{"plain", " word", "\n\n", "say \"hi\"", `back\slash`, "<b>&amp;", "tab\there", "\u2028sep\u2029",
		"é 漢字 🙂", "\x00\x1f ctl", "\xff bad utf8", "/slash/", "\u007f del", "{\"json\":1}"}
	var chunks []room.AnswerChunk
	for i, p := range pieces {
		chunks = append(chunks, room.AnswerChunk{AnswerID: id, Seq: i, Delta: p})
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		n := 1 + r.IntN(5)
		deltas := make([]string, n)
		times := make([]time.Time, n)
		next := at
		for j := range deltas {
			deltas[j] = pieces[r.IntN(len(pieces))]
			times[j] = next
			next = next.Add(time.Duration(r.IntN(40)) * time.Millisecond)
		}
		chunks = append(chunks, room.NewAnswerChunk(id, i*1000+r.IntN(1000), deltas, times))
	}
	chunks = append(chunks, room.AnswerChunk{AnswerID: id, Seq: 1 << 40, Delta: ""}, room.AnswerChunk{AnswerID: id, Delta: "x", Ends: []int{}, OffsetsMS: []int64{}})
	for _, c := range chunks {
		_, data, err := room.Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		if want, _ := json.Marshal(c); !bytes.Equal(data, want) {
			t.Errorf("Encode(%#v) = %s; encoding/json writes %s", c, data, want)
		}
		_, ok := checkParseChunk(t, data)
		// Invalid UTF-8 is written as the escape \ufffd, which reads back
		// as U+FFFD, written as itself: Encode of the read chunk differs.
		if want := utf8.ValidString(c.Delta); ok != want {
			t.Errorf("ParseChunk of what Encode wrote: ok = %v, want %v: %s", ok, want, data)
		}
	}
}

// TestParseChunkRefusesOtherForms lists data encoding/json reads but
// Encode would not write, and chunks that do not validate: ParseChunk
// leaves each to the slow path.
func TestParseChunkRefusesOtherForms(t *testing.T) {
	const id = `"answer_id":"0b9f6f0e-3a0c-4e7e-9a55-3c9d2f1e8a77"`
	for _, data := range []string{
		`{` + id + `,"seq":1,"delta":"x"} `,
		`{` + id + `, "seq":1,"delta":"x"}`,
		`{` + id + `,"seq":01,"delta":"x"}`,
		`{` + id + `,"seq":-0,"delta":"x"}`,
		`{` + id + `,"seq":-1,"delta":"x"}`,
		`{` + id + `,"seq":1e2,"delta":"x"}`,
		`{` + id + `,"seq":1,"delta":"\u0041"}`,
		`{` + id + `,"seq":1,"delta":"\/"}`,
		`{` + id + `,"seq":1,"delta":"<"}`,
		`{` + id + `,"seq":1,"delta":"a` + "\n" + `"}`,
		`{` + id + `,"seq":1,"delta":"x","ends":[]}`,
		`{` + id + `,"seq":1,"delta":"xy","ends":[1]}`,
		`{` + id + `,"seq":1,"delta":"xy","ends":[1],"offsets_ms":[-1]}`,
		`{` + id + `,"seq":1,"delta":"xy","ends":[ 1],"offsets_ms":[2]}`,
		`{` + id + `,"seq":1,"delta":"xy","offsets_ms":[2],"ends":[1]}`,
		`{` + id + `,"seq":1,"delta":"x","extra":1}`,
		`{` + id + `,"seq":1,"delta":"x"`,
		`{` + id + `,"seq":1,"delta":"x\"}`,
		`{"answer_id":"0B9F6F0E-3A0C-4E7E-9A55-3C9D2F1E8A77","seq":1,"delta":"x"}`,
		`{"seq":1,` + id + `,"delta":"x"}`,
		`{` + id + `,"seq":99999999999999999999,"delta":"x"}`,
	} {
		if _, ok := checkParseChunk(t, []byte(data)); ok {
			t.Errorf("ParseChunk accepted %s, which Encode does not write", data)
		}
	}
}

// FuzzParseChunk holds ParseChunk to its promise on any input.
func FuzzParseChunk(f *testing.F) {
	f.Add([]byte(`{"answer_id":"0b9f6f0e-3a0c-4e7e-9a55-3c9d2f1e8a77","seq":1,"delta":"x"}`))
	f.Add([]byte(`{"answer_id":"0b9f6f0e-3a0c-4e7e-9a55-3c9d2f1e8a77","seq":3,"delta":"a\nb\u003c","ends":[1,2],"offsets_ms":[0,5]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if c, ok := checkParseChunk(t, data); ok && strings.Count(string(data), `"delta"`) == 0 {
			t.Fatalf("accepted %q without a delta: %#v", data, c)
		}
	})
}
