package domain

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// NoVersion is the version of a stream that has no events. The first event
// of a stream has version 0.
const NoVersion int64 = -1

// MaxEventSize is the largest event a store accepts: its type, data and
// metadata together: 1 MiB, the size of KurrentDB's default append limit
// (which counts the type twice, so a KurrentDB server needs a little headroom).
const MaxEventSize = 1 << 20

// MaxStreamNameLength bounds stream names.
const MaxStreamNameLength = 200

// Position is an event's place in the global order of all streams. Events
// are ordered by Commit, then Prepare. The zero Position is before the first
// event. What the two numbers mean is the store's business (the Postgres
// store uses the writing transaction's id and a sequence; KurrentDB its log
// positions); callers only compare and checkpoint them.
type Position struct {
	Commit  uint64 `json:"commit"`
	Prepare uint64 `json:"prepare"`
}

// Start is the position before the first event.
var Start = Position{}

// Less reports whether p comes before q in the global order.
func (p Position) Less(q Position) bool {
	if p.Commit != q.Commit {
		return p.Commit < q.Commit
	}
	return p.Prepare < q.Prepare
}

// IsZero reports whether p is Start.
func (p Position) IsZero() bool { return p == Position{} }

func (p Position) String() string { return fmt.Sprintf("%d/%d", p.Commit, p.Prepare) }

// ParsePosition parses the form String produces.
func ParsePosition(s string) (Position, error) {
	var p Position
	if _, err := fmt.Sscanf(s, "%d/%d", &p.Commit, &p.Prepare); err != nil || p.String() != s {
		return Position{}, Errorf(EINVALID, "position %q is not of the form COMMIT/PREPARE", s)
	}
	return p, nil
}

// ExpectedVersion is the condition an append places on the stream's current
// version. Build one with Any, NoStream, StreamExists or Exact.
type ExpectedVersion struct {
	kind    expectKind
	version int64
}

type expectKind uint8

const (
	expectAny expectKind = iota
	expectNoStream
	expectStreamExists
	expectExact
)

// Any appends whatever the stream's version.
func Any() ExpectedVersion { return ExpectedVersion{kind: expectAny, version: NoVersion} }

// NoStream appends only when the stream has no events.
func NoStream() ExpectedVersion { return ExpectedVersion{kind: expectNoStream, version: NoVersion} }

// StreamExists appends only when the stream has at least one event.
func StreamExists() ExpectedVersion {
	return ExpectedVersion{kind: expectStreamExists, version: NoVersion}
}

// Exact appends only when the stream's last event has version v. Exact(NoVersion)
// is NoStream.
func Exact(v int64) ExpectedVersion {
	if v < 0 {
		return NoStream()
	}
	return ExpectedVersion{kind: expectExact, version: v}
}

// IsAny, IsNoStream, IsStreamExists report the kind of expectation.
func (e ExpectedVersion) IsAny() bool { return e.kind == expectAny }

// IsNoStream reports whether e is NoStream.
func (e ExpectedVersion) IsNoStream() bool { return e.kind == expectNoStream }

// IsStreamExists reports whether e is StreamExists.
func (e ExpectedVersion) IsStreamExists() bool { return e.kind == expectStreamExists }

// Version returns the exact version and true, or NoVersion and false when e
// is not an Exact expectation.
func (e ExpectedVersion) Version() (int64, bool) {
	return e.version, e.kind == expectExact
}

// Holds reports whether a stream at version current (NoVersion when it does
// not exist) satisfies e.
func (e ExpectedVersion) Holds(current int64) bool {
	switch e.kind {
	case expectNoStream:
		return current == NoVersion
	case expectStreamExists:
		return current != NoVersion
	case expectExact:
		return current == e.version
	default:
		return true
	}
}

func (e ExpectedVersion) String() string {
	switch e.kind {
	case expectNoStream:
		return "no stream"
	case expectStreamExists:
		return "stream exists"
	case expectExact:
		return fmt.Sprintf("version %d", e.version)
	default:
		return "any"
	}
}

// Metadata is the standard content of an event's metadata. Stores treat
// metadata as opaque JSON; this type is how Parley's writers fill it in.
type Metadata struct {
	CorrelationID string    `json:"correlation_id,omitempty"`
	CausationID   string    `json:"causation_id,omitempty"`
	UserID        string    `json:"user_id,omitempty"`
	OccurredAt    time.Time `json:"occurred_at"`
	// PrevHash and Hash are the audit chain's fields (see domain/audit and
	// WithChainFields): the chain store writes them, writers leave them empty.
	PrevHash string `json:"prev_hash,omitempty"`
	Hash     string `json:"hash,omitempty"`
}

// EventData is an event to append. The caller chooses its ID; appending the
// same IDs again is an idempotent retry.
type EventData struct {
	ID       UUID
	Type     string
	Data     json.RawMessage
	Metadata json.RawMessage
}

// Size is the number of bytes the event counts against MaxEventSize: its
// type, data and metadata, not counting the audit chain's fields at the end
// of the metadata (see WithChainFields), so chaining never pushes an event
// over the limit.
func (e EventData) Size() int {
	return len(e.Type) + len(e.Data) + len(e.Metadata) - chainFieldsSize(e.Metadata)
}

// RecordedEvent is an event as stored.
type RecordedEvent struct {
	ID         UUID
	Type       string
	Data       json.RawMessage
	Metadata   json.RawMessage
	Stream     string
	Version    int64
	Position   Position
	RecordedAt time.Time
}

// AppendResult is what a successful append returns: the version of the
// stream's last event (the version to expect next time) and the global
// position of the last event written.
type AppendResult struct {
	Version  int64
	Position Position
}

// ValidateStreamName checks a stream name: 1 to MaxStreamNameLength bytes
// of ASCII letters, digits and "-_.:@", not starting with "$" (reserved by
// KurrentDB for system streams).
func ValidateStreamName(stream string) error {
	bad := func(reason string) error {
		return &InvalidEventError{Stream: stream, Index: -1, Field: "stream name", Reason: reason}
	}
	switch {
	case stream == "":
		return bad("it is empty")
	case len(stream) > MaxStreamNameLength:
		return bad(fmt.Sprintf("it is longer than %d bytes", MaxStreamNameLength))
	case stream[0] == '$':
		return bad("names starting with $ are reserved")
	}
	for i := 0; i < len(stream); i++ {
		c := stream[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("-_.:@", c) >= 0
		if !ok {
			return bad(fmt.Sprintf("byte %d (%q) is not a letter, digit or one of -_.:@", i, c))
		}
	}
	return nil
}

// ValidateAppend checks everything a store must reject before writing:
// the stream name, an empty batch, and each event's ID, type, data,
// metadata and size. Stores call it first thing in Append.
func ValidateAppend(stream string, events []EventData) error {
	if err := ValidateStreamName(stream); err != nil {
		return err
	}
	if len(events) == 0 {
		return &InvalidEventError{Stream: stream, Index: -1, Field: "append", Reason: "no events to append"}
	}
	seen := make(map[UUID]int, len(events))
	for i, ev := range events {
		bad := func(field, reason string) error {
			return &InvalidEventError{Stream: stream, Index: i, Field: field, Reason: reason}
		}
		if ev.ID.IsZero() {
			return bad("id", "the event ID is the nil UUID; choose a random or derived one")
		}
		if j, dup := seen[ev.ID]; dup {
			return bad("id", fmt.Sprintf("event ID %s is also used by event %d of the same append", ev.ID, j))
		}
		seen[ev.ID] = i
		if err := validateType(ev.Type); err != "" {
			return bad("type", err)
		}
		if err := validateJSON(ev.Data, false); err != "" {
			return bad("data", err)
		}
		if err := validateJSON(ev.Metadata, true); err != "" {
			return bad("metadata", err)
		}
		if n := ev.Size(); n > MaxEventSize {
			return bad("size", fmt.Sprintf("the event is %d bytes, over the %d byte limit", n, MaxEventSize))
		}
	}
	return nil
}

func validateType(t string) string {
	switch {
	case t == "":
		return "the type is empty"
	case len(t) > 200:
		return "the type is longer than 200 bytes"
	case !utf8.ValidString(t):
		return "the type is not valid UTF-8"
	case strings.ContainsRune(t, 0):
		return "the type contains a NUL character"
	case strings.TrimSpace(t) != t:
		return "the type has leading or trailing white space"
	}
	return ""
}

// validateJSON reports why b is not acceptable JSON for a store, or "".
// Empty metadata is allowed; empty data is not.
func validateJSON(b []byte, emptyOK bool) string {
	if len(b) == 0 {
		if emptyOK {
			return ""
		}
		return "it is empty; use {} or null for an event without data"
	}
	if !json.Valid(b) {
		return "it is not valid JSON"
	}
	if hasNUL(b) {
		return "it contains a NUL character (a raw byte or a \\u0000 escape)"
	}
	return ""
}

// hasNUL reports whether valid JSON b contains a NUL byte or a \u0000
// escape inside a string (an escaped backslash before "u0000" does not count).
func hasNUL(b []byte) bool {
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case 0:
			return true
		case '\\':
			if i+5 < len(b) && b[i+1] == 'u' && string(b[i+2:i+6]) == "0000" {
				return true
			}
			i++ // skip the escaped character, so `\\u0000` is not read as an escape
		}
	}
	return false
}
