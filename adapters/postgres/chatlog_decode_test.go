package postgres

import (
	"encoding/json"
	"testing"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
)

// chunkSeeds are chunk data in the form json.Marshal writes, and near it.
var chunkSeeds = []string{
	`{"answer_id":"0b9f6f0e-3a0c-4e7e-9a55-3c9d2f1e8a77","seq":17,"delta":"The youth housing allowance "}`,
	`{"answer_id":"0B9F6F0E-3A0C-4E7E-9A55-3C9D2F1E8A77","seq":0,"delta":""}`,
	`{"answer_id":"0b9f6f0e-3a0c-4e7e-9a55-3c9d2f1e8a77","seq":-0,"delta":"청년 월세 지원은 "}`,
	`{"answer_id":"0b9f6f0e-3a0c-4e7e-9a55-3c9d2f1e8a77","seq":123456789012345678,"delta":"§3(b) — "}`,
	`{"answer_id":"0b9f6f0e-3a0c-4e7e-9a55-3c9d2f1e8a77","seq":7,"delta":"say \"hi\"\n"}`,
	`{"answer_id":"0b9f6f0e-3a0c-4e7e-9a55-3c9d2f1e8a77","seq":7,"delta":"\u003cb\u003e"}`,
	`{"answer_id":"0b9f6f0e-3a0c-4e7e-9a55-3c9d2f1e8a77","seq":07,"delta":"x"}`,
	`{"answer_id":"0b9f6f0e-3a0c-4e7e-9a55-3c9d2f1e8a77","seq":1.0,"delta":"x"}`,
	`{"answer_id":"0b9f6f0e-3a0c-4e7e-9a55-3c9d2f1e8a77","seq":1,"delta":"x","extra":"y"}`,
	`{"answer_id":"0b9f6f0e-3a0c-4e7e-9a55-3c9d2f1e8a77","seq":1,"delta":"x"} `,
	`{"answer_id":"0b9f6f0e-3a0c-4e7e-9a55-3c9d2f1e8a7z","seq":1,"delta":"x"}`,
	`{"answer_id":"0b9f6f0e3a0c-4e7e-9a55-3c9d2f1e8a77-","seq":1,"delta":"x"}`,
	`{"answer_id":"0b9f6f0e-3a0c-4e7e-9a55-3c9d2f1e8a77","seq":99999999999999999999,"delta":"x"}`,
	"{\"answer_id\":\"0b9f6f0e-3a0c-4e7e-9a55-3c9d2f1e8a77\",\"seq\":1,\"delta\":\"\xff\"}",
	"{\"answer_id\":\"0b9f6f0e-3a0c-4e7e-9a55-3c9d2f1e8a77\",\"seq\":1,\"delta\":\"\t\"}",
	`{"seq":1,"answer_id":"0b9f6f0e-3a0c-4e7e-9a55-3c9d2f1e8a77","delta":"x"}`,
	`{"answer_id":"0b9f6f0e-3a0c-4e7e-9a55-3c9d2f1e8a77","seq":1,"delta":"x"`,
}

// FuzzDecodeChunk checks the fast path against encoding/json: whatever it
// accepts, json.Unmarshal decodes to the same chunk.
//
//	go test -run '^$' -fuzz FuzzDecodeChunk -fuzztime 60s ./adapters/postgres/
func FuzzDecodeChunk(f *testing.F) {
	for _, s := range chunkSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, ok := decodeChunk(&domain.RecordedEvent{Type: room.TypeAnswerChunk, Data: data})
		if !ok {
			return
		}
		var want room.AnswerChunk
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("the fast path accepted %q, which json.Unmarshal rejects: %v", data, err)
		}
		if got != want {
			t.Fatalf("%q: fast path %+v, json.Unmarshal %+v", data, got, want)
		}
	})
}

func TestDecodeChunkTakesWhatJSONMarshalWrites(t *testing.T) {
	id := domain.MustParseUUID("0b9f6f0e-3a0c-4e7e-9a55-3c9d2f1e8a77")
	for _, c := range []room.AnswerChunk{
		{AnswerID: id, Seq: 0, Delta: "The "},
		{AnswerID: id, Seq: 1234, Delta: "청년 월세 지원은 월 최대 20만 원이며 "},
		{AnswerID: id, Seq: 5, Delta: ""},
	} {
		data, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := decodeChunk(&domain.RecordedEvent{Type: room.TypeAnswerChunk, Data: data})
		if !ok || got != c {
			t.Errorf("decodeChunk(%s) = %+v, %t; want %+v by the fast path", data, got, ok, c)
		}
	}
	for _, s := range []string{chunkSeeds[4], chunkSeeds[5], chunkSeeds[6], chunkSeeds[8]} {
		if _, ok := decodeChunk(&domain.RecordedEvent{Type: room.TypeAnswerChunk, Data: []byte(s)}); ok {
			t.Errorf("decodeChunk(%s) took the fast path; want room.Decode to", s)
		}
	}
	if _, ok := decodeChunk(&domain.RecordedEvent{Type: room.TypeMessagePosted, Data: []byte(chunkSeeds[0])}); ok {
		t.Error("decodeChunk decoded a MessagePosted")
	}
}
