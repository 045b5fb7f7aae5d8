package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// Error is a refusal of Decode. Its text is safe to show to the client
// that sent the input: it names keys and JSON kinds, never Go types.
type Error struct{ msg string }

func (e *Error) Error() string { return e.msg }

func refuse(format string, a ...any) *Error { return &Error{msg: fmt.Sprintf(format, a...)} }

// DecodeObject decodes data, which must be exactly one JSON object, into v
// (a pointer to a struct, or to a map, say). Besides what json.Unmarshal
// checks, it refuses text that is not valid UTF-8 or holds a \u escape of
// a lone surrogate, a key that appears twice in one object, and, in
// objects decoded into structs, a key that is not exactly the JSON name of
// one of the struct's fields (so a key spelt in another case is refused,
// not matched). Every refusal is an *Error.
func DecodeObject(data []byte, v any) error {
	if !utf8.Valid(data) {
		return refuse("the JSON text is not valid UTF-8")
	}
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return refuse("the JSON text must be an object")
	}
	if err := checkEscapes(data); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := walk(dec, reflect.TypeOf(v), ""); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return refuse("the JSON text has data after the object")
	}
	// The walk has checked the keys; what is left is the values' types.
	dec = json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			if te.Field == "" {
				return refuse("the JSON text is a %s, not what is expected", te.Value)
			}
			return refuse("field %q must be %s, not a %s", te.Field, kindOf(te.Type), te.Value)
		}
		return refuse("invalid JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}

// walk reads one JSON value from dec, checking the keys of its objects
// against t, the Go type it will be decoded into (nil: anything). path
// names the value in errors.
func walk(dec *json.Decoder, t reflect.Type, path string) error {
	tok, err := dec.Token()
	if err != nil {
		return syntaxError(err)
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil // a scalar: its type is checked by the decode
	}
	switch d {
	case '[':
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if err := walk(dec, elem, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case '{':
		var fields map[string]reflect.Type
		var elem reflect.Type
		switch {
		case t != nil && t.Kind() == reflect.Struct && t != rawMessage:
			fields = fieldsOf(t)
		case t != nil && t.Kind() == reflect.Map:
			elem = t.Elem()
		}
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return syntaxError(err)
			}
			key, _ := kt.(string)
			name := path + "." + key
			if path == "" {
				name = key
			}
			if seen[key] {
				return refuse("key %q appears twice", name)
			}
			seen[key] = true
			ft := elem
			if fields != nil {
				var known bool
				if ft, known = fields[key]; !known {
					for f := range fields {
						if strings.EqualFold(f, key) {
							return refuse("key %q must be spelt %q", name, f)
						}
					}
					return refuse("unknown field %q", name)
				}
			}
			if err := walk(dec, ft, name); err != nil {
				return err
			}
		}
	}
	if _, err := dec.Token(); err != nil { // the closing delimiter
		return syntaxError(err)
	}
	return nil
}

var rawMessage = reflect.TypeFor[json.RawMessage]()

func syntaxError(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return refuse("invalid JSON: unexpected end of the text")
	}
	return refuse("invalid JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// fieldsCache holds fieldsOf's answers per struct type.
var fieldsCache sync.Map // reflect.Type → map[string]reflect.Type

// fieldsOf returns the JSON names of a struct's fields, as encoding/json
// names them (embedded structs' fields promoted), with their types.
func fieldsOf(t reflect.Type) map[string]reflect.Type {
	if f, ok := fieldsCache.Load(t); ok {
		return f.(map[string]reflect.Type)
	}
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		ft := f.Type
		if f.Anonymous && name == "" {
			et := ft
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				for k, v := range fieldsOf(et) {
					if _, ok := out[k]; !ok {
						out[k] = v
					}
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = ft
	}
	fieldsCache.Store(t, out)
	return out
}

// kindOf names the JSON kind a Go type decodes from.
func kindOf(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return "of another kind"
}

// checkEscapes refuses a \u escape of a surrogate that is not half of a
// pair: it stands for no character, and encoding/json would silently turn
// it into U+FFFD. data is valid UTF-8; malformed strings are left to the
// decoder.
func checkEscapes(data []byte) error {
	inString := false
	for i := 0; i < len(data); i++ {
		c := data[i]
		if !inString {
			if c == '"' {
				inString = true
			}
			continue
		}
		switch c {
		case '"':
			inString = false
		case '\\':
			if i+1 >= len(data) {
				return nil
			}
			if data[i+1] != 'u' {
				i++ // a one-character escape
				continue
			}
			r, ok := hex4(data, i+2)
			if !ok {
				return nil // malformed: the decoder reports it
			}
			i += 5
			switch {
			case utf16.IsSurrogate(r) && r < 0xdc00: // a high half: a low one must follow
				lo, ok := hex4(data, i+3)
				if i+2 >= len(data) || data[i+1] != '\\' || data[i+2] != 'u' || !ok || lo < 0xdc00 || lo > 0xdfff {
					return refuse("the JSON text has a \\u escape of a lone surrogate (%04X), which is no character", r)
				}
				i += 6
			case utf16.IsSurrogate(r):
				return refuse("the JSON text has a \\u escape of a lone surrogate (%04X), which is no character", r)
			}
		}
	}
	return nil
}

// hex4 reads four hex digits at data[i:].
func hex4(data []byte, i int) (rune, bool) {
	if i+4 > len(data) {
		return 0, false
	}
	var r rune
	for _, c := range data[i : i+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return r, true
}
