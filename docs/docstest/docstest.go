// Package docstest checks JSON values against the schemas of Parley's API
// documents (docs/asyncapi.yaml and docs/openapi.yaml): the documents'
// own tests check their examples with it, and end-to-end tests check what
// the server really sends.
package docstest

import (
	"cmp"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Load parses the YAML document name of fsys into plain maps and slices.
func Load(fsys fs.FS, name string) (map[string]any, error) {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("parse %s: %w", name, err)
	}
	return doc, nil
}

// Get walks v, a parsed document, along keys; it returns nil when a key
// is missing.
func Get(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// Resolve resolves a local JSON reference such as "#/components/schemas/X".
func Resolve(doc any, ref string) (any, error) {
	if !strings.HasPrefix(ref, "#/") {
		return nil, fmt.Errorf("%q is not a local reference", ref)
	}
	v := doc
	for _, tok := range strings.Split(ref[2:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch c := v.(type) {
		case map[string]any:
			next, ok := c[tok]
			if !ok {
				return nil, fmt.Errorf("%q: no %q", ref, tok)
			}
			v = next
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				return nil, fmt.Errorf("%q: no index %q", ref, tok)
			}
			v = c[i]
		default:
			return nil, fmt.Errorf("%q: %q is inside a scalar", ref, tok)
		}
	}
	return v, nil
}

// FromJSON turns encoding/json's float64 numbers into ints where they are
// whole, as the YAML decoder produces them.
func FromJSON(v any) any {
	switch c := v.(type) {
	case map[string]any:
		for k, e := range c {
			c[k] = FromJSON(e)
		}
	case []any:
		for i, e := range c {
			c[i] = FromJSON(e)
		}
	case float64:
		if c == float64(int(c)) {
			return int(c)
		}
	}
	return v
}

var (
	uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
)

// Validate checks v (a value as FromJSON or the YAML decoder gives it)
// against schema, resolving references in doc. It covers the subset of JSON Schema the documents use:
// $ref, allOf, type, const, enum, required, properties,
// additionalProperties, items, minimum, maximum, minLength, maxLength,
// pattern and the uuid and date-time formats.
func Validate(doc, schema, v any, at string) []error {
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", cmp.Or(at, "/"), fmt.Sprintf(format, args...)))
	}
	for range 10 {
		ref, _ := Get(schema, "$ref").(string)
		if ref == "" {
			break
		}
		target, err := Resolve(doc, ref)
		if err != nil {
			return []error{err}
		}
		// Sibling keywords of $ref (allowed in OpenAPI 3.1) are ignored but
		// description-only, which is what these documents use.
		schema = target
	}
	s, ok := schema.(map[string]any)
	if !ok {
		return []error{fmt.Errorf("%s: schema is %T", at, schema)}
	}
	for _, sub := range anyList(s["allOf"]) {
		errs = append(errs, Validate(doc, sub, v, at)...)
	}
	if want, ok := s["type"]; ok {
		types := anyList(want)
		if types == nil {
			types = []any{want}
		}
		if !slices.ContainsFunc(types, func(t any) bool { return hasType(v, t.(string)) }) {
			fail("%v (%T) is not of type %v", v, v, want)
			return errs
		}
	}
	if c, ok := s["const"]; ok && v != c {
		fail("%v is not the const %v", v, c)
	}
	if e, ok := s["enum"]; ok && !slices.Contains(anyList(e), v) {
		fail("%v is not one of %v", v, e)
	}
	switch c := v.(type) {
	case map[string]any:
		for _, r := range anyList(s["required"]) {
			if _, ok := c[r.(string)]; !ok {
				fail("required field %v is missing", r)
			}
		}
		props, _ := s["properties"].(map[string]any)
		for k, e := range c {
			if p, ok := props[k]; ok {
				errs = append(errs, Validate(doc, p, e, at+"/"+k)...)
			} else if ap, ok := s["additionalProperties"]; ok && ap != true {
				if ap == false {
					fail("unexpected field %s", k)
				} else {
					errs = append(errs, Validate(doc, ap, e, at+"/"+k)...)
				}
			}
		}
	case []any:
		if items, ok := s["items"]; ok {
			for i, e := range c {
				errs = append(errs, Validate(doc, items, e, at+"/"+strconv.Itoa(i))...)
			}
		}
	case string:
		n := len([]rune(c))
		if m, ok := s["minLength"].(int); ok && n < m {
			fail("%q is shorter than %d", c, m)
		}
		if m, ok := s["maxLength"].(int); ok && n > m {
			fail("%q is longer than %d", c, m)
		}
		if p, ok := s["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(c) {
			fail("%q does not match %s", c, p)
		}
		switch s["format"] {
		case "uuid":
			if !uuidRE.MatchString(c) {
				fail("%q is not a UUID", c)
			}
		case "date-time":
			if _, err := time.Parse(time.RFC3339Nano, c); err != nil {
				fail("%q is not an RFC 3339 time", c)
			}
		}
	case int, float64:
		f := toFloat(c)
		if m, ok := s["minimum"]; ok && f < toFloat(m) {
			fail("%v is below the minimum %v", c, m)
		}
		if m, ok := s["maximum"]; ok && f > toFloat(m) {
			fail("%v is above the maximum %v", c, m)
		}
	}
	return errs
}

func anyList(v any) []any { l, _ := v.([]any); return l }

func toFloat(v any) float64 {
	switch c := v.(type) {
	case int:
		return float64(c)
	case float64:
		return c
	}
	return 0
}

func hasType(v any, typ string) bool {
	switch typ {
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "integer":
		_, ok := v.(int)
		return ok
	case "number":
		switch v.(type) {
		case int, float64:
			return true
		}
	case "null":
		return v == nil
	}
	return false
}
