package privacy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
)

func testKey(t testing.TB) *Key {
	t.Helper()
	k, err := NewKey(3, "kid", bytes.Repeat([]byte{9}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// chunkData is the data the codec writes for n deltas drawn from texts.
func chunkData(t testing.TB, r *rand.Rand, seq, n int) []byte {
	t.Helper()
	texts := []string{"안녕", " <b>", "&amp;", " 청년", "\"q\"", " rent", "\n", "😀", "\\", " a"}
	deltas := make([]string, n)
	at := make([]time.Time, n)
	t0 := time.Unix(1700000000, 0)
	for i := range deltas {
		deltas[i] = texts[r.IntN(len(texts))]
		t0 = t0.Add(time.Duration(r.IntN(40)) * time.Millisecond)
		at[i] = t0
	}
	_, b, err := room.Encode(room.NewAnswerChunk(domain.NameUUID(domain.UUID{}, fmt.Sprint(seq)), seq, deltas, at))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The typed chunk path must store and return exactly what the generic
// path does, or the fallback between them would change stored bytes (and
// the audit chain) with the data's shape.
func TestChunkFastPathMatchesGeneric(t *testing.T) {
	key := testKey(t)
	keyFn := func() (*Key, error) { return key, nil }
	r := rand.New(rand.NewPCG(1, 2))
	const stream = "room-3"
	for i := range 300 {
		data := chunkData(t, r, i, 1+r.IntN(6))
		id := domain.NameUUID(domain.UUID{}, fmt.Sprint("ev", i))
		ad := eventAD(stream, id, room.TypeAnswerChunk)
		fast, ok, err := sealChunk(data, keyFn, ad)
		if err != nil || !ok {
			t.Fatalf("sealChunk(%s) = ok %v, %v", data, ok, err)
		}
		slow, changed, err := sealGeneric(room.TypeAnswerChunk, data, keyFn, ad)
		if err != nil || !changed {
			t.Fatalf("sealGeneric(%s) = changed %v, %v", data, changed, err)
		}
		if !bytes.Equal(fast, slow) {
			t.Fatalf("sealed chunk differs:\n typed   %s\n generic %s", fast, slow)
		}
		if got, ok := parseSealedChunk(string(fast)); !ok {
			t.Fatalf("parseSealedChunk does not read %s", fast)
		} else if again, _ := json.Marshal(got); !bytes.Equal(again, fast) {
			t.Fatalf("parseSealedChunk(%s) = %+v, which marshals to %s", fast, got, again)
		}
		ev := domain.RecordedEvent{ID: id, Type: room.TypeAnswerChunk, Stream: stream, Data: fast}
		for _, k := range []*Key{key, nil} {
			fo, ok, err := openChunk(ev.Data, k, ad)
			if err != nil || !ok {
				t.Fatalf("openChunk(%s, key %v) = ok %v, %v", ev.Data, k != nil, ok, err)
			}
			so, err := openGeneric(ev, k)
			if err != nil {
				t.Fatalf("openGeneric(%s): %v", ev.Data, err)
			}
			if !bytes.Equal(fo, so) {
				t.Fatalf("opened chunk (key %v) differs:\n typed   %s\n generic %s", k != nil, fo, so)
			}
			if k != nil && !bytes.Equal(fo, data) {
				t.Fatalf("opened chunk %s, sealed %s", fo, data)
			}
		}
	}
}

// Data the typed path would not reproduce byte for byte goes the generic
// way, and what it stores still opens to the same data.
func TestChunkFastPathFallsBack(t *testing.T) {
	key := testKey(t)
	keyFn := func() (*Key, error) { return key, nil }
	for _, data := range []string{
		`{"answer_id":"00000000-0000-0000-0000-000000000000","seq":1,"delta":"","ends":null}`,
		`{"seq":1,"answer_id":"00000000-0000-0000-0000-000000000000","delta":"reordered"}`,
		`{"answer_id":"00000000-0000-0000-0000-000000000000","seq":1,"delta":"secret","extra":"kept"}`,
		`{"answer_id":"00000000-0000-0000-0000-000000000000","seq":1.0,"delta":"number form"}`,
		`{"answer_id":"00000000-0000-0000-0000-000000000000","seq":1,"delta":"ab","ends":[5],"offsets_ms":[3]}`,
	} {
		if _, ok, err := sealChunk([]byte(data), keyFn, []byte("ad")); ok || err != nil {
			t.Errorf("sealChunk(%s) = ok %v, %v; want the generic path", data, ok, err)
		}
		sealed, _, _, err := sealEvent(room.TypeAnswerChunk, []byte(data), keyFn, []byte("ad"))
		if err != nil {
			t.Fatalf("sealEvent(%s): %v", data, err)
		}
		if strings.Contains(string(sealed), "secret") || strings.Contains(string(sealed), "reordered") {
			t.Errorf("sealed %s holds secret text: %s", data, sealed)
		}
	}
	// A chunk that does not validate opens the generic way, as it is.
	bad := []byte(`{"answer_id":"00000000-0000-0000-0000-000000000000","seq":1,"delta":"ab","ends":[5],"offsets_ms":[3]}`)
	sealed, _, _, err := sealEvent(room.TypeAnswerChunk, bad, keyFn, []byte("room-3/00000000-0000-0000-0000-000000000000/AnswerChunk"))
	if err != nil {
		t.Fatal(err)
	}
	ev := domain.RecordedEvent{Type: room.TypeAnswerChunk, Stream: "room-3", Data: sealed}
	if _, ok, _ := openChunk(ev.Data, key, eventAD(ev.Stream, ev.ID, ev.Type)); ok {
		t.Errorf("openChunk opened a chunk that does not validate")
	}
	got, err := openEvent(ev, key)
	if err != nil {
		t.Fatal(err)
	}
	var g, w any
	if json.Unmarshal(got, &g) != nil || json.Unmarshal(bad, &w) != nil || !reflect.DeepEqual(g, w) {
		t.Errorf("openEvent = %s; want %s", got, bad)
	}
	tampered := []byte(`{"answer_id":"00000000-0000-0000-0000-000000000000","sealed":{"enc":1,"kid":"kid","n":"AAAAAAAAAAAAAAAA","ct":"AAAAAAAAAAAAAAAAAAAAAAAAAAAA"},"seq":1}`)
	if _, _, err := openChunk(tampered, key, []byte("ad")); err == nil {
		t.Errorf("openChunk of a forged envelope succeeded")
	}
}

func BenchmarkChunk(b *testing.B) {
	key := testKey(b)
	keyFn := func() (*Key, error) { return key, nil }
	data := chunkData(b, rand.New(rand.NewPCG(1, 2)), 7, 1)
	ad := []byte("room-3/x/AnswerChunk")
	sealed, _, _ := sealChunk(data, keyFn, ad)
	ev := domain.RecordedEvent{Type: room.TypeAnswerChunk, Stream: "room-3", Data: sealed}
	ev.ID = domain.UUID{}
	adEv := eventAD(ev.Stream, ev.ID, ev.Type)
	sealedEv, _, _ := sealChunk(data, keyFn, adEv)
	ev.Data = sealedEv
	b.Run("seal/typed", func(b *testing.B) {
		for b.Loop() {
			sealChunk(data, keyFn, ad)
		}
	})
	b.Run("seal/generic", func(b *testing.B) {
		for b.Loop() {
			sealGeneric(room.TypeAnswerChunk, data, keyFn, ad)
		}
	})
	b.Run("open/typed", func(b *testing.B) {
		for b.Loop() {
			openChunk(ev.Data, key, adEv)
		}
	})
	b.Run("open/generic", func(b *testing.B) {
		for b.Loop() {
			openGeneric(ev, key)
		}
	})
	clear := domain.RecordedEvent{Type: room.TypeAnswerChunk, Stream: "room-3", Data: data}
	b.Run("baseline/decode", func(b *testing.B) { // what every reader pays anyway
		for b.Loop() {
			room.Decode(clear, false)
		}
	})
	b.Run("baseline/decode-json", func(b *testing.B) { // encoding/json, as Decode did
		for b.Loop() {
			var c room.AnswerChunk
			json.Unmarshal(data, &c)
		}
	})
}

// parseSealedChunk reads only what json.Marshal of a sealedChunk writes,
// and reads it as encoding/json does.
func TestParseSealedChunkAgreesWithJSON(t *testing.T) {
	const id = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
	env := `{"enc":1,"kid":"ab12","n":"AAAAAAAAAAAAAAAA","ct":"AAAA"}`
	for _, in := range []string{
		`{"answer_id":"` + id + `","sealed":` + env + `,"seq":7}`,
		`{"answer_id":"` + id + `","sealed":` + env + `,"seq":0}`,
	} {
		if _, ok := parseSealedChunk(in); !ok {
			t.Errorf("parseSealedChunk does not read %s, which json.Marshal writes", in)
		}
	}
	for _, in := range []string{
		`{"answer_id":"` + id + `","sealed":` + env + `,"seq":7}`,
		`{"answer_id":"` + id + `","sealed":` + env + `,"seq":0}`,
		`{"answer_id":"` + id + `","sealed":` + env + `,"seq":07}`,
		`{"answer_id":"` + id + `","sealed":` + env + `,"seq":-1}`,
		`{"answer_id":"` + id + `","sealed":` + env + `,"seq":7} `,
		`{"answer_id":"6BA7B810-9DAD-11D1-80B4-00C04FD430C8","sealed":` + env + `,"seq":7}`,
		`{"answer_id":"` + id + `","sealed":{"enc":1,"kid":"ab12","n":"AAAAAAAAAAAAAAAA","ct":"AAAA","x":1},"seq":7}`,
		`{"answer_id":"` + id + `","sealed":` + env + `,"seq":7,"delta":"x"}`,
		`{"seq":7,"answer_id":"` + id + `","sealed":` + env + `}`,
	} {
		got, ok := parseSealedChunk(in)
		if !ok {
			continue
		}
		var want sealedChunk
		if err := json.Unmarshal([]byte(in), &want); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("parseSealedChunk(%s) = %+v; encoding/json %+v, %v", in, got, want, err)
		}
		if again, _ := json.Marshal(got); string(again) != in {
			t.Errorf("parseSealedChunk read %s, which is not in the form it was written: %s", in, again)
		}
	}
}

// A chunk that does not validate is left to the generic path, opened
// with its key or, erased, without.
func TestOpenChunkLeavesInvalidChunks(t *testing.T) {
	key := testKey(t)
	ad := []byte("room-3/x/AnswerChunk")
	env, _ := json.Marshal(key.Seal([]byte(`{"delta":"x"}`), ad))
	data := []byte(`{"answer_id":"6ba7b810-9dad-11d1-80b4-00c04fd430c8","sealed":` + string(env) + `,"seq":-1}`)
	for _, k := range []*Key{key, nil} {
		if out, ok, err := openChunk(data, k, ad); ok || err != nil {
			t.Errorf("openChunk of a chunk with seq -1 (key %v) = %s, ok %v, %v; want it left to the generic path", k != nil, out, ok, err)
		}
	}
}
