package room

import (
	"strconv"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/jsonform"
)

// Chunks are nearly every event a process reads or writes, and
// encoding/json's reflection was the largest part of handling one (the
// stream benchmark's profile: sealing, folding and sending a chunk each
// decoded it). Encode writes a chunk, and ParseChunk reads that one form,
// without it; both give encoding/json's bytes and values (tested).

// chunkHead and the field names are the order Encode writes an
// AnswerChunk's fields in: the struct's.
const (
	chunkHead  = `{"answer_id":"`
	chunkSeq   = `","seq":`
	chunkDelta = `,"delta":`
	chunkEnds  = `,"ends":`
	chunkOffs  = `,"offsets_ms":`
)

// AppendChunkHead appends the start of what Encode writes for a chunk of
// answer from sequence number seq: its clear fields, then the comma before
// its content fields (the delta and what follows, which ParseChunk's
// contentAt points at). The privacy codec seals the content and joins it
// back here.
func AppendChunkHead(b []byte, answer domain.UUID, seq int) []byte {
	b = append(b, chunkHead...)
	b = append(b, answer.String()...)
	b = append(b, chunkSeq...)
	b = strconv.AppendInt(b, int64(seq), 10)
	return append(b, ',')
}

// appendChunk appends what json.Marshal writes for c.
func appendChunk(b []byte, c AnswerChunk) []byte {
	b = AppendChunkHead(b, c.AnswerID, c.Seq)
	b = append(b, chunkDelta[1:]...)
	b = jsonform.AppendString(b, c.Delta)
	if len(c.Ends) > 0 {
		b = jsonform.AppendInts(append(b, chunkEnds...), c.Ends)
	}
	if len(c.OffsetsMS) > 0 {
		b = jsonform.AppendInts(append(b, chunkOffs...), c.OffsetsMS)
	}
	return append(b, '}')
}

// ParseChunk returns the AnswerChunk in data when data is exactly what
// Encode writes for a chunk that validates: Encode of the result gives
// data back byte for byte, and contentAt is where its content fields (the
// delta and what follows, up to the closing brace) start. ok is false for
// anything else (another spacing or number form, an unknown field, a
// chunk that does not validate), which Decode reads the slow way.
func ParseChunk(data []byte) (c AnswerChunk, contentAt int, ok bool) {
	s := string(data) // one copy, which the delta returned shares
	if len(s) < len(chunkHead)+36 || s[:len(chunkHead)] != chunkHead {
		return AnswerChunk{}, 0, false
	}
	i := len(chunkHead)
	id, err := domain.ParseUUID(s[i : i+36])
	if err != nil || id.String() != s[i:i+36] {
		return AnswerChunk{}, 0, false
	}
	i += 36
	if !hasAt(s, i, chunkSeq) {
		return AnswerChunk{}, 0, false
	}
	seq, n, ok := jsonform.Int(s[i+len(chunkSeq):])
	if !ok {
		return AnswerChunk{}, 0, false
	}
	i += len(chunkSeq) + n
	if !hasAt(s, i, chunkDelta) {
		return AnswerChunk{}, 0, false
	}
	contentAt = i + 1
	i += len(chunkDelta)
	delta, n, ok := jsonform.String(s[i:])
	if !ok {
		return AnswerChunk{}, 0, false
	}
	i += n
	c = AnswerChunk{AnswerID: id, Seq: int(seq), Delta: delta}
	if hasAt(s, i, chunkEnds) {
		if c.Ends, n, ok = jsonform.Ints[int](s[i+len(chunkEnds):]); !ok {
			return AnswerChunk{}, 0, false
		}
		i += len(chunkEnds) + n
	}
	if hasAt(s, i, chunkOffs) {
		if c.OffsetsMS, n, ok = jsonform.Ints[int64](s[i+len(chunkOffs):]); !ok {
			return AnswerChunk{}, 0, false
		}
		i += len(chunkOffs) + n
	}
	if i != len(s)-1 || s[i] != '}' || c.Validate() != nil {
		return AnswerChunk{}, 0, false
	}
	return c, contentAt, true
}

func hasAt(s string, i int, lit string) bool {
	return len(s)-i >= len(lit) && s[i:i+len(lit)] == lit
}
