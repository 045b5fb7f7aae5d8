package docs

import (
	"encoding/json"
	"maps"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/parleychat/parley/docs/docstest"
)

// The protocol's names, from the specification. The documents must name
// every one of them.
var (
	serverFrameTypes = []string{"history", "message", "chunk", "answer", "answer_failed", "answer_cancelled", "error", "pong"}
	chatClientTypes  = []string{"message", "cancel", "ping"}
	auditClientTypes = []string{"ping"}
	wsErrorCodes     = []string{"invalid", "too_large", "busy", "rate_limited", "unavailable", "internal", "forbidden"}
	answerReasons    = []string{"interrupted", "shutdown", "cancelled", "generator_error", "timeout", "erased"}
	closeCodes       = []string{"4401", "4403", "4429", "4000", "1009", "1007", "1008", "1001", "1011", "1012", "1013"}
	securitySchemes  = map[string][3]string{ // name -> type, in, name
		"queryToken":        {"httpApiKey", "query", "token"},
		"bearerHeader":      {"http", "", ""},
		"bearerSubprotocol": {"httpApiKey", "header", "Sec-WebSocket-Protocol"},
		"ticket":            {"httpApiKey", "query", "ticket"},
	}
	restErrorCodes = []string{"invalid", "unauthorized", "forbidden", "not_found", "conflict", "too_large", "rate_limited", "unavailable", "internal"}
	restPaths      = map[string][]string{
		"/api/rooms":               {"get", "post"},
		"/api/rooms/{id}":          {"delete", "get"},
		"/api/rooms/{id}/messages": {"get"},
		"/api/rooms/{id}/ticket":   {"post"},
		"/api/me/erase":            {"post"},
		"/api/dev/token":           {"post"},
		"/livez":                   {"get"},
		"/readyz":                  {"get"},
		"/metrics":                 {"get"},
		"/openapi.yaml":            {"get"},
		"/asyncapi.yaml":           {"get"},
	}
	httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}
)

// load parses an embedded YAML document into plain maps and slices.
func load(t *testing.T, name string) map[string]any {
	t.Helper()
	b, err := FS.ReadFile(name)
	if err != nil {
		t.Fatalf("read embedded %s: %v", name, err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("parse %s: %v", name, err)
	}
	return doc
}

// get walks doc along keys; it returns nil when a key is missing.
var get = docstest.Get

func mapAt(v any, keys ...string) map[string]any {
	m, _ := get(v, keys...).(map[string]any)
	return m
}

func str(v any, keys ...string) string {
	s, _ := get(v, keys...).(string)
	return s
}

// deref follows $ref until it reaches an object without one.
func deref(t *testing.T, doc, v any) any {
	t.Helper()
	for range 10 {
		ref := str(v, "$ref")
		if ref == "" {
			return v
		}
		next, err := docstest.Resolve(doc, ref)
		if err != nil {
			t.Fatal(err)
		}
		v = next
	}
	t.Fatalf("reference chain too long at %v", v)
	return nil
}

// walk calls fn for every map in v, with its location.
func walk(v any, at string, fn func(at string, m map[string]any)) {
	switch c := v.(type) {
	case map[string]any:
		fn(at, c)
		for _, k := range slices.Sorted(maps.Keys(c)) {
			walk(c[k], at+"/"+k, fn)
		}
	case []any:
		for i, e := range c {
			walk(e, at+"/"+strconv.Itoa(i), fn)
		}
	}
}

func TestEmbedded(t *testing.T) {
	for _, name := range []string{"asyncapi.yaml", "openapi.yaml", "protocol.md"} {
		b, err := FS.ReadFile(name)
		if err != nil {
			t.Errorf("FS lacks %s: %v", name, err)
		} else if len(b) == 0 {
			t.Errorf("%s is empty", name)
		}
	}
}

// TestLicense: both API documents name the license of the repository's
// LICENSE file, Apache 2.0, as their specifications spell it (OpenAPI 3.1
// by SPDX identifier, AsyncAPI 3 by URL).
func TestLicense(t *testing.T) {
	b, err := os.ReadFile("../LICENSE")
	if err != nil {
		t.Fatalf("the repository has no LICENSE: %v", err)
	}
	if text := strings.Join(strings.Fields(string(b)), " "); !strings.HasPrefix(text, "Apache License Version 2.0, January 2004") ||
		!strings.Contains(text, "END OF TERMS AND CONDITIONS") {
		t.Errorf("LICENSE is not the full text of the Apache License 2.0")
	}
	for _, tc := range []struct{ doc, key, want string }{
		{"openapi.yaml", "identifier", "Apache-2.0"},
		{"asyncapi.yaml", "url", "https://www.apache.org/licenses/LICENSE-2.0"},
	} {
		doc := load(t, tc.doc)
		if got := str(doc, "info", "license", "name"); got != "Apache License 2.0" {
			t.Errorf("%s: info.license.name = %q, want Apache License 2.0", tc.doc, got)
		}
		if got := str(doc, "info", "license", tc.key); got != tc.want {
			t.Errorf("%s: info.license.%s = %q, want %q", tc.doc, tc.key, got, tc.want)
		}
	}
}

func TestRefsResolve(t *testing.T) {
	for _, name := range []string{"asyncapi.yaml", "openapi.yaml"} {
		doc := load(t, name)
		n := 0
		walk(doc, "#", func(at string, m map[string]any) {
			ref, ok := m["$ref"]
			if !ok {
				return
			}
			n++
			s, ok := ref.(string)
			if !ok {
				t.Errorf("%s %s: $ref is %T, want a string", name, at, ref)
				return
			}
			target, err := docstest.Resolve(doc, s)
			if err != nil {
				t.Errorf("%s %s: %v", name, at, err)
				return
			}
			if _, ok := target.(map[string]any); !ok {
				t.Errorf("%s %s: %s is a %T, want an object", name, at, s, target)
			}
			if !strings.HasPrefix(s, "#/components/") && !strings.HasPrefix(s, "#/channels/") {
				t.Errorf("%s %s: %s points outside components and channels", name, at, s)
			}
		})
		if n == 0 {
			t.Errorf("%s has no $ref at all; the walk is broken", name)
		}
	}
}

// frameType returns the value a message's payload fixes for "type": its
// const, or the only value of its enum; "" when the type is not fixed.
func frameType(t *testing.T, doc, msg any) (typ string, required bool) {
	t.Helper()
	payload := deref(t, doc, get(deref(t, doc, msg), "payload"))
	prop := deref(t, doc, get(payload, "properties", "type"))
	if c, ok := get(prop, "const").(string); ok {
		typ = c
	} else if e, ok := get(prop, "enum").([]any); ok && len(e) == 1 {
		typ, _ = e[0].(string)
	}
	req, _ := get(payload, "required").([]any)
	return typ, slices.Contains(req, any("type"))
}

// operationTypes returns, for one channel and action, the frame types of the
// messages the operations carry.
func operationTypes(t *testing.T, doc map[string]any, channel, action string) []string {
	t.Helper()
	var types []string
	for id, op := range mapAt(doc, "operations") {
		if str(op, "action") != action || str(op, "channel", "$ref") != "#/channels/"+channel {
			continue
		}
		msgs, _ := get(op, "messages").([]any)
		if len(msgs) == 0 {
			t.Errorf("operation %s has no messages", id)
		}
		for _, m := range msgs {
			ref := str(m, "$ref")
			if !strings.HasPrefix(ref, "#/channels/"+channel+"/messages/") {
				t.Errorf("operation %s: message %q is not one of channel %s's", id, ref, channel)
			}
			typ, required := frameType(t, doc, m)
			if typ == "" {
				t.Errorf("operation %s: message %s has no type const or enum", id, ref)
			}
			if action == "send" && !required {
				t.Errorf("operation %s: server message %s does not require type", id, ref)
			}
			types = append(types, typ)
		}
	}
	sort.Strings(types)
	return slices.Compact(types)
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

func TestAsyncAPI(t *testing.T) {
	doc := load(t, "asyncapi.yaml")
	if got := str(doc, "asyncapi"); got != "3.0.0" {
		t.Fatalf("asyncapi = %q, want 3.0.0", got)
	}
	for ch, addr := range map[string]string{"chat": "/ws/chat/{room_id}/", "audit": "/ws/audit/{room_id}/"} {
		if got := str(doc, "channels", ch, "address"); got != addr {
			t.Errorf("channel %s address = %q, want %q", ch, got, addr)
		}
		if mapAt(doc, "channels", ch, "parameters", "room_id") == nil {
			t.Errorf("channel %s does not declare room_id", ch)
		}
	}

	// Every server message type is a message with a type const, sent on both
	// channels.
	messages := mapAt(doc, "components", "messages")
	for _, typ := range serverFrameTypes {
		found := false
		for _, m := range messages {
			if got, required := frameType(t, doc, m); got == typ && required {
				found = true
			}
		}
		if !found {
			t.Errorf("no component message has a required type const %q", typ)
		}
	}
	for _, ch := range []string{"chat", "audit"} {
		if got, want := operationTypes(t, doc, ch, "send"), sorted(serverFrameTypes); !slices.Equal(got, want) {
			t.Errorf("channel %s send operations carry %v, want %v", ch, got, want)
		}
	}
	if got, want := operationTypes(t, doc, "chat", "receive"), sorted(chatClientTypes); !slices.Equal(got, want) {
		t.Errorf("chat receive operations carry %v, want %v", got, want)
	}
	if got, want := operationTypes(t, doc, "audit", "receive"), sorted(auditClientTypes); !slices.Equal(got, want) {
		t.Errorf("audit receive operations carry %v, want %v", got, want)
	}

	// Security: the four token transports, all on chat, no ticket on audit.
	schemes := mapAt(doc, "components", "securitySchemes")
	for name, want := range securitySchemes {
		s := schemes[name]
		if s == nil {
			t.Errorf("no security scheme %s", name)
			continue
		}
		if got := [3]string{str(s, "type"), str(s, "in"), str(s, "name")}; got != want {
			t.Errorf("security scheme %s = %v, want %v", name, got, want)
		}
	}
	for id, op := range mapAt(doc, "operations") {
		var got []string
		sec, _ := get(op, "security").([]any)
		for _, s := range sec {
			got = append(got, strings.TrimPrefix(str(s, "$ref"), "#/components/securitySchemes/"))
		}
		want := slices.Sorted(maps.Keys(securitySchemes))
		if str(op, "channel", "$ref") == "#/channels/audit" {
			want = slices.DeleteFunc(want, func(s string) bool { return s == "ticket" })
		}
		if got = sorted(got); !slices.Equal(got, want) {
			t.Errorf("operation %s security = %v, want %v", id, got, want)
		}
	}

	// Close codes are documented on both channels.
	for _, ch := range []string{"chat", "audit"} {
		desc := str(doc, "channels", ch, "description")
		listed := mapAt(doc, "channels", ch, "x-close-codes")
		for _, code := range closeCodes {
			if !strings.Contains(desc, "| "+code+" |") {
				t.Errorf("channel %s description does not document close code %s", ch, code)
			}
			if _, ok := listed[code]; !ok {
				t.Errorf("channel %s x-close-codes lacks %s", ch, code)
			}
		}
	}

	// Closed sets.
	schemas := mapAt(doc, "components", "schemas")
	if got := enumOf(get(schemas, "ErrorFrame", "properties", "code")); !slices.Equal(got, sorted(wsErrorCodes)) {
		t.Errorf("error frame codes = %v, want %v", got, sorted(wsErrorCodes))
	}
	reasons := append(enumOf(get(schemas, "AnswerFailedFrame", "properties", "reason")),
		enumOf(get(schemas, "AnswerCancelledFrame", "properties", "reason"))...)
	if got := sorted(reasons); !slices.Equal(got, sorted(answerReasons)) {
		t.Errorf("answer reasons = %v, want %v", got, sorted(answerReasons))
	}
	wantItem := []string{"created_at", "id", "message", "role", "sources", "status", "version"}
	if got := stringsOf(get(schemas, "Message", "required")); !slices.Equal(sorted(got), wantItem) {
		t.Errorf("history item requires %v, want %v", sorted(got), wantItem)
	}
}

func enumOf(v any) []string { return sorted(stringsOf(get(v, "enum"))) }

func stringsOf(v any) []string {
	l, _ := v.([]any)
	var out []string
	for _, e := range l {
		s, _ := e.(string)
		out = append(out, s)
	}
	return out
}

func TestOpenAPI(t *testing.T) {
	doc := load(t, "openapi.yaml")
	if v := str(doc, "openapi"); !strings.HasPrefix(v, "3.1.") {
		t.Fatalf("openapi = %q, want 3.1.x", v)
	}
	paths := mapAt(doc, "paths")
	for path, want := range restPaths {
		item := mapAt(paths, path)
		if item == nil {
			t.Errorf("no path %s", path)
			continue
		}
		var got []string
		for _, m := range httpMethods {
			if _, ok := item[m]; ok {
				got = append(got, m)
			}
		}
		if got = sorted(got); !slices.Equal(got, want) {
			t.Errorf("%s methods = %v, want %v", path, got, want)
		}
	}
	for path := range paths {
		if _, ok := restPaths[path]; !ok {
			t.Errorf("path %s is not in the specification", path)
		}
	}
	errSchema := mapAt(doc, "components", "schemas", "Error")
	if got := enumOf(get(errSchema, "properties", "error", "properties", "code")); !slices.Equal(got, sorted(restErrorCodes)) {
		t.Errorf("REST error codes = %v, want %v", got, sorted(restErrorCodes))
	}
	// Status of success per operation, and 401 on every authenticated one.
	wantStatus := map[string]string{
		"post /api/rooms": "201", "get /api/rooms": "200", "get /api/rooms/{id}": "200",
		"delete /api/rooms/{id}": "204", "get /api/rooms/{id}/messages": "200",
		"post /api/rooms/{id}/ticket": "201",
	}
	for op, status := range wantStatus {
		method, path, _ := strings.Cut(op, " ")
		responses := mapAt(paths, path, method, "responses")
		if responses[status] == nil {
			t.Errorf("%s has no %s response", op, status)
		}
		if responses["401"] == nil {
			t.Errorf("%s has no 401 response", op)
		}
	}
	if get(paths, "/api/rooms", "post", "responses", "201", "headers", "Location") == nil {
		t.Error("POST /api/rooms 201 has no Location header")
	}
	for _, code := range []string{"200", "503"} {
		if get(paths, "/readyz", "get", "responses", code) == nil {
			t.Errorf("/readyz has no %s response", code)
		}
	}
	limit := paramNamed(t, doc, mapAt(paths, "/api/rooms/{id}/messages", "get"), "limit")
	if d, m := get(limit, "schema", "default"), get(limit, "schema", "maximum"); d != 50 || m != 200 {
		t.Errorf("limit default, maximum = %v, %v; want 50, 200", d, m)
	}
}

func paramNamed(t *testing.T, doc, op any, name string) any {
	t.Helper()
	params, _ := get(op, "parameters").([]any)
	for _, p := range params {
		if p = deref(t, doc, p); str(p, "name") == name {
			return p
		}
	}
	t.Errorf("no parameter %s", name)
	return nil
}

// TestExamples checks every example in both documents, and every frame of
// protocol.md's example session, against its schema.
func TestExamples(t *testing.T) {
	async := load(t, "asyncapi.yaml")
	n := 0
	for name, m := range mapAt(async, "components", "messages") {
		payload := get(m, "payload")
		examples, _ := get(m, "examples").([]any)
		if len(examples) == 0 {
			t.Errorf("message %s has no example", name)
		}
		for i, ex := range examples {
			n++
			for _, err := range docstest.Validate(async, payload, get(ex, "payload"), "") {
				t.Errorf("asyncapi message %s example %d: %v", name, i, err)
			}
		}
	}

	open := load(t, "openapi.yaml")
	walk(open, "#", func(at string, m map[string]any) {
		ex, ok := m["example"]
		if !ok || m["schema"] == nil {
			return
		}
		n++
		for _, err := range docstest.Validate(open, m["schema"], ex, "") {
			t.Errorf("openapi %s example: %v", at, err)
		}
	})

	// The example session: "< {...}" lines are server frames, "> {...}"
	// client frames.
	server := map[string]any{}
	for _, typ := range serverFrameTypes {
		// Server messages are named for their type (TestAsyncAPI checks
		// that they carry it).
		server[typ] = get(async, "components", "messages", typ, "payload")
	}
	client := map[string]any{
		"message": get(async, "components", "messages", "postMessage", "payload"),
		"cancel":  get(async, "components", "messages", "cancel", "payload"),
		"ping":    get(async, "components", "messages", "ping", "payload"),
	}
	md, err := FS.ReadFile("protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	frames := 0
	for i, line := range strings.Split(string(md), "\n") {
		dir, frame, ok := strings.Cut(line, " ")
		if (dir != "<" && dir != ">") || !ok || !strings.HasPrefix(frame, "{") {
			continue
		}
		frames++
		var v any
		if err := json.Unmarshal([]byte(frame), &v); err != nil {
			t.Errorf("protocol.md:%d: %v", i+1, err)
			continue
		}
		typ := str(v, "type")
		schemas := server
		if dir == ">" {
			schemas = client
			if typ == "" {
				typ = "message"
			}
		}
		schema, ok := schemas[typ]
		if !ok {
			t.Errorf("protocol.md:%d: no schema for %s frame type %q", i+1, dir, typ)
			continue
		}
		for _, err := range docstest.Validate(async, schema, docstest.FromJSON(v), "") {
			t.Errorf("protocol.md:%d: %v", i+1, err)
		}
	}
	if n == 0 || frames < 10 {
		t.Errorf("checked %d examples and %d session frames; the scan is broken", n, frames)
	}
}
