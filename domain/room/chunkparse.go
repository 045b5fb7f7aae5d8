package room

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/parleychat/parley/domain"
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
	if plainJSON(c.Delta) {
		b = append(append(append(b, '"'), c.Delta...), '"')
	} else {
		q, _ := json.Marshal(c.Delta) // a string always marshals
		b = append(b, q...)
	}
	if len(c.Ends) > 0 {
		b = appendInts(append(b, chunkEnds...), c.Ends)
	}
	if len(c.OffsetsMS) > 0 {
		b = appendInts(append(b, chunkOffs...), c.OffsetsMS)
	}
	return append(b, '}')
}

func appendInts[T int | int64](b []byte, vs []T) []byte {
	b = append(b, '[')
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(v), 10)
	}
	return append(b, ']')
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
	seq, n, ok := canonicalInt(s[i+len(chunkSeq):])
	if !ok {
		return AnswerChunk{}, 0, false
	}
	i += len(chunkSeq) + n
	if !hasAt(s, i, chunkDelta) {
		return AnswerChunk{}, 0, false
	}
	contentAt = i + 1
	i += len(chunkDelta)
	delta, n, ok := canonicalString(s[i:])
	if !ok {
		return AnswerChunk{}, 0, false
	}
	i += n
	c = AnswerChunk{AnswerID: id, Seq: int(seq), Delta: delta}
	if hasAt(s, i, chunkEnds) {
		if c.Ends, n, ok = canonicalInts[int](s[i+len(chunkEnds):]); !ok {
			return AnswerChunk{}, 0, false
		}
		i += len(chunkEnds) + n
	}
	if hasAt(s, i, chunkOffs) {
		if c.OffsetsMS, n, ok = canonicalInts[int64](s[i+len(chunkOffs):]); !ok {
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

// canonicalInt reads the decimal integer s starts with, as json.Marshal
// writes one (no sign but '-', no leading zero, no exponent), and its
// length.
func canonicalInt(s string) (v int64, n int, ok bool) {
	for n < len(s) && (s[n] == '-' && n == 0 || s[n] >= '0' && s[n] <= '9') {
		n++
	}
	v, err := strconv.ParseInt(s[:n], 10, 64)
	if err != nil || strconv.FormatInt(v, 10) != s[:n] {
		return 0, 0, false
	}
	return v, n, true
}

// canonicalInts reads the non-empty JSON array of integers s starts with,
// as json.Marshal writes it (omitempty leaves an empty one out), and its
// length.
func canonicalInts[T int | int64](s string) (out []T, n int, ok bool) {
	if len(s) < 3 || s[0] != '[' {
		return nil, 0, false
	}
	n = 1
	for {
		v, m, ok := canonicalInt(s[n:])
		if !ok || int64(T(v)) != v {
			return nil, 0, false
		}
		out = append(out, T(v))
		n += m
		if n >= len(s) {
			return nil, 0, false
		}
		switch s[n] {
		case ',':
			n++
		case ']':
			return out, n + 1, true
		default:
			return nil, 0, false
		}
	}
}

// canonicalString reads the JSON string s starts with when json.Marshal
// writes its value exactly so, and its length. A string with escapes
// (newlines and quotes are common in answers) is checked by marshalling
// its value again; one without is checked byte by byte.
func canonicalString(s string) (v string, n int, ok bool) {
	if len(s) < 2 || s[0] != '"' {
		return "", 0, false
	}
	escaped := false
	for n = 1; n < len(s); n++ {
		switch b := s[n]; {
		case b == '\\':
			escaped = true
			n++ // the escaped byte cannot end the string
		case b == '"':
			raw := s[1:n]
			if !escaped {
				if !plainJSON(raw) {
					return "", 0, false
				}
				return raw, n + 1, true
			}
			if json.Unmarshal([]byte(s[:n+1]), &v) != nil {
				return "", 0, false
			}
			if again, err := json.Marshal(v); err != nil || string(again) != s[:n+1] {
				return "", 0, false
			}
			return v, n + 1, true
		}
	}
	return "", 0, false
}

// plainJSON reports whether json.Marshal writes s between quotes as it is:
// valid UTF-8 with no control character, quote, backslash, HTML-special
// character or line/paragraph separator, all of which it escapes.
func plainJSON(s string) bool {
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b < 0x20 || b == '"' || b == '\\' || b == '<' || b == '>' || b == '&' {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
			return false
		}
		i += size
	}
	return true
}
