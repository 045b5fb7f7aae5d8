package privacy

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// extract moves the values at paths (room.SecretFields) out of obj into a
// flat map keyed by each value's concrete path ("sources.1.snippet").
// Empty strings, nulls and empty arrays are left in place: they say
// nothing.
func extract(obj map[string]any, paths []string) map[string]any {
	out := map[string]any{}
	for _, p := range paths {
		extractAt(obj, strings.Split(p, "."), "", out)
	}
	return out
}

func extractAt(v any, parts []string, prefix string, out map[string]any) {
	if len(parts) == 0 {
		return
	}
	if parts[0] == "*" {
		arr, ok := v.([]any)
		if !ok {
			return
		}
		for i, el := range arr {
			extractAt(el, parts[1:], prefix+strconv.Itoa(i)+".", out)
		}
		return
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return
	}
	val, ok := obj[parts[0]]
	if !ok {
		return
	}
	if len(parts) > 1 {
		extractAt(val, parts[1:], prefix+parts[0]+".", out)
		return
	}
	if empty(val) {
		return
	}
	out[prefix+parts[0]] = val
	delete(obj, parts[0])
}

func empty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case []any:
		return len(x) == 0
	}
	return false
}

// restore puts the values extract took back into obj. A path that no
// longer leads anywhere (the event was edited) is skipped.
func restore(obj map[string]any, secrets map[string]any) {
	for path, val := range secrets {
		parts := strings.Split(path, ".")
		var cur any = obj
		for i, part := range parts {
			last := i == len(parts)-1
			switch c := cur.(type) {
			case map[string]any:
				if last {
					c[part] = val
				} else {
					cur = c[part]
				}
			case []any:
				n, err := strconv.Atoi(part)
				if err != nil || n < 0 || n >= len(c) || last {
					cur = nil
				} else {
					cur = c[n]
				}
			default:
				cur = nil
			}
			if cur == nil {
				break
			}
		}
	}
}

// decodeObject reads a JSON object keeping numbers as they are written.
func decodeObject(b []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var obj map[string]any
	if err := d.Decode(&obj); err != nil {
		return nil, err
	}
	return obj, nil
}
