// Package jsonform reads and writes strings and integers in exactly the
// form encoding/json's Marshal gives them, without its reflection. The
// hand-written codecs of the events a process handles most (domain/room's
// answer chunks, domain/privacy's envelopes) use it to read only what
// Marshal would have written, and to write the same bytes, so that their
// fast paths and encoding/json never disagree.
package jsonform

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// Plain reports whether Marshal writes s between quotes as it is: valid
// UTF-8 with no control character, quote, backslash, HTML-special
// character or line/paragraph separator, all of which it escapes.
func Plain(s string) bool {
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

// AppendString appends what Marshal writes for s.
func AppendString(b []byte, s string) []byte {
	if Plain(s) {
		return append(append(append(b, '"'), s...), '"')
	}
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}

// String reads the JSON string s starts with when Marshal writes its
// value exactly so, and returns the value and the string's length. One
// with escapes (newlines and quotes are common in answers) is checked by
// marshalling its value again; one without, byte by byte.
func String(s string) (v string, n int, ok bool) {
	if len(s) < 2 || s[0] != '"' {
		return "", 0, false
	}
	escaped := false
	for n = 1; n < len(s); n++ {
		switch s[n] {
		case '\\':
			escaped = true
			n++ // the escaped byte cannot end the string
		case '"':
			raw := s[1:n]
			if !escaped {
				if !Plain(raw) {
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

// Int reads the decimal integer s starts with, as Marshal writes one (no
// '+', no leading zero, no exponent, no "-0"), and its length.
func Int(s string) (v int64, n int, ok bool) {
	for n < len(s) && (s[n] == '-' && n == 0 || s[n] >= '0' && s[n] <= '9') {
		n++
	}
	v, err := strconv.ParseInt(s[:n], 10, 64)
	if err != nil || strconv.FormatInt(v, 10) != s[:n] {
		return 0, 0, false
	}
	return v, n, true
}

// Ints reads the non-empty JSON array of integers s starts with, as
// Marshal writes it, and its length. (omitempty leaves an empty one out.)
func Ints[T int | int64](s string) (out []T, n int, ok bool) {
	if len(s) < 3 || s[0] != '[' {
		return nil, 0, false
	}
	n = 1
	for {
		v, m, ok := Int(s[n:])
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

// AppendInts appends what Marshal writes for vs, which is not empty.
func AppendInts[T int | int64](b []byte, vs []T) []byte {
	b = append(b, '[')
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(v), 10)
	}
	return append(b, ']')
}
