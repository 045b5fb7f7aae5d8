package privacy

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/jsonform"
	"github.com/parleychat/parley/domain/room"
)

// Answer chunks are nearly every event of a room's stream, so they skip the
// generic path (fields.go: a map[string]any per event, decoded and encoded
// several times) for typed structs that give the same bytes: sealing and
// opening a chunk either way stores and returns exactly the same data
// (TestChunkFastPathMatchesGeneric). Data the typed path does not
// reproduce byte for byte (fields the codec does not write, an empty
// delta, a chunk that does not validate) takes the generic path.

// chunkSecrets is the sealed part of a chunk: room.SecretFields of
// room.TypeAnswerChunk, in the order and form extract gives them.
type chunkSecrets struct {
	Delta     string  `json:"delta,omitempty"`
	Ends      []int   `json:"ends,omitempty"`
	OffsetsMS []int64 `json:"offsets_ms,omitempty"`
}

// sealedChunk is a chunk's data as stored: its clear fields and the
// envelope, in the order the generic path marshals them (sorted keys).
type sealedChunk struct {
	AnswerID domain.UUID `json:"answer_id"`
	Sealed   Envelope    `json:"sealed"`
	Seq      int         `json:"seq"`
}

// sealChunk returns the stored data of the chunk in data, sealed with key
// for ad; ok is false when the generic path must do it.
func sealChunk(data []byte, key func() (*Key, error), ad []byte) (out []byte, ok bool, err error) {
	c, at, ok := room.ParseChunk(data)
	if !ok || c.Delta == "" {
		// Only data exactly as the codec writes it: anything else (an
		// unknown field, another number form) is the generic path's to keep.
		return nil, false, nil
	}
	// The codec writes the content fields (chunkSecrets's, in its order)
	// last: from the delta on, data is chunkSecrets's JSON.
	plain := make([]byte, 0, 1+len(data)-at)
	plain = append(append(plain, '{'), data[at:]...)
	k, err := key()
	if err != nil {
		return nil, false, err
	}
	return appendSealedChunk(make([]byte, 0, 2*len(data)+96), c.AnswerID, k.Seal(plain, ad), c.Seq), true, nil
}

// appendSealedChunk appends what json.Marshal writes for a sealedChunk.
func appendSealedChunk(b []byte, answer domain.UUID, env Envelope, seq int) []byte {
	b = append(b, `{"answer_id":"`...)
	b = append(b, answer.String()...)
	b = append(b, `","sealed":`...)
	b = env.appendJSON(b)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, int64(seq), 10)
	return append(b, '}')
}

// openChunk returns the clear data of the sealed chunk in data, opened
// with key (nil: the room is erased or has no key, and the chunk opens to
// its clear fields); ok is false when the generic path must do it.
func openChunk(data []byte, key *Key, ad []byte) (out []byte, ok bool, err error) {
	s, ok := parseSealedChunk(string(data))
	if !ok {
		if json.Unmarshal(data, &s) != nil {
			return nil, false, nil
		}
		if again, err := json.Marshal(s); err != nil || !bytes.Equal(again, data) {
			return nil, false, nil
		}
	}
	if key == nil {
		c := room.AnswerChunk{AnswerID: s.AnswerID, Seq: s.Seq}
		if c.Validate() != nil {
			return nil, false, nil
		}
		_, out, err = room.Encode(c)
		return out, err == nil, nil
	}
	plain, err := key.Open(s.Sealed, ad)
	if err != nil {
		return nil, false, err
	}
	// The inverse of sealChunk: the clear fields, then the content.
	if len(plain) < 2 || plain[0] != '{' {
		return nil, false, nil
	}
	out = append(room.AppendChunkHead(make([]byte, 0, 64+len(plain)), s.AnswerID, s.Seq), plain[1:]...)
	if _, _, ok := room.ParseChunk(out); ok {
		return out, true, nil
	}
	// Content the generic path sealed in another form (an empty delta's
	// omitted field, say): through the struct and the codec.
	var sec chunkSecrets
	if json.Unmarshal(plain, &sec) != nil {
		return nil, false, nil
	}
	c := room.AnswerChunk{AnswerID: s.AnswerID, Seq: s.Seq, Delta: sec.Delta, Ends: sec.Ends, OffsetsMS: sec.OffsetsMS}
	if c.Validate() != nil {
		return nil, false, nil
	}
	if _, out, err = room.Encode(c); err != nil {
		return nil, false, nil
	}
	return out, true, nil
}

// parseSealedChunk reads data when it is exactly what json.Marshal of a
// sealedChunk writes (`{"answer_id":"…","sealed":{…},"seq":N}`, the
// envelope as parseEnvelopeFast reads it): a rebuild opens every chunk of
// the log, and encoding/json took a third of its time.
func parseSealedChunk(data string) (sealedChunk, bool) {
	var s sealedChunk
	rest, ok := strings.CutPrefix(data, `{"answer_id":"`)
	if !ok || len(rest) < 36 {
		return s, false
	}
	id, err := domain.ParseUUID(rest[:36])
	if err != nil || id.String() != rest[:36] {
		return s, false
	}
	rest, ok = strings.CutPrefix(rest[36:], `","sealed":`)
	if !ok {
		return s, false
	}
	end := strings.Index(rest, `},"seq":`)
	if end < 0 {
		return s, false
	}
	env, ok := parseEnvelopeFast(rest[:end+1])
	if !ok {
		return s, false
	}
	num, ok := strings.CutSuffix(rest[end+len(`},"seq":`):], "}")
	if !ok {
		return s, false
	}
	seq, n, ok := jsonform.Int(num)
	if !ok || n != len(num) || int64(int(seq)) != seq {
		return s, false
	}
	return sealedChunk{AnswerID: id, Sealed: env, Seq: int(seq)}, true
}
