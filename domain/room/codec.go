package room

import (
	"encoding/json"
	"fmt"

	"github.com/parleychat/parley/domain"
)

// The codec: Encode is the one way a room event becomes the bytes a
// writer appends, Decode the one way a reader gets it back, so every byte
// of a room's stream goes through this file. Between the two, the fields
// SecretFields lists are sealed under the room's data key on their way
// into the store and opened on their way out (domain/privacy.Store, the
// one place every writer and reader of the log passes): Encode and Decode
// stay pure, and see them in clear.

// decoders decode each stored type's data to its payload, by value. It is
// fixed here: the log's types are hand-written constants, never
// registered at run time.
var decoders = map[string]func(data []byte) (Event, error){
	TypeAuditAccessed:     decodeAs[AuditAccessed],
	TypeRoomCreated:       decodeAs[RoomCreated],
	TypeRoomDeleted:       decodeAs[RoomDeleted],
	TypeRoomErased:        decodeAs[RoomErased],
	TypeMessagePosted:     decodeAs[MessagePosted],
	TypeAnswerStarted:     decodeAs[AnswerStarted],
	TypeAnswerChunk:       decodeChunk,
	TypeAnswerCompleted:   decodeAs[AnswerCompleted],
	TypeAnswerFailed:      decodeAs[AnswerFailed],
	TypeAnswerCancelled:   decodeAs[AnswerCancelled],
	TypeRetrievalRecorded: decodeAs[RetrievalRecorded],
	TypeSummaryUpdated:    decodeAs[SummaryUpdated],
}

// decodeAs decodes data as an E and returns the value, not a pointer, so
// callers switch on value types.
func decodeAs[E Event](data []byte) (Event, error) {
	var e E
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, err
	}
	return e, nil
}

// decodeChunk decodes an AnswerChunk and checks that its deltas' ends and
// offsets fit its text (Validate).
func decodeChunk(data []byte) (Event, error) {
	if c, _, ok := ParseChunk(data); ok {
		return c, nil
	}
	var c AnswerChunk
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Encode returns the stored type and data of e, a room event Decode
// knows: Decode of them gives e back. It is pure.
func Encode(e Event) (string, json.RawMessage, error) {
	t := e.EventType()
	if _, ok := decoders[t]; !ok {
		return "", nil, fmt.Errorf("encode %s: not a room event type", t)
	}
	if c, ok := e.(AnswerChunk); ok {
		return t, appendChunk(nil, c), nil
	}
	b, err := json.Marshal(e)
	if err != nil {
		return "", nil, fmt.Errorf("encode %s: %w", t, err)
	}
	return t, b, nil
}

// EncodeEvents returns evs as events to append: event i with ID ids[i] (one
// ID per event) and each with meta as its metadata.
func EncodeEvents(evs []Event, ids []domain.UUID, meta domain.Metadata) ([]domain.EventData, error) {
	if len(ids) != len(evs) {
		return nil, fmt.Errorf("encode %d events with %d IDs", len(evs), len(ids))
	}
	mb, err := json.Marshal(meta)
	if err != nil {
		return nil, fmt.Errorf("encode metadata: %w", err)
	}
	out := make([]domain.EventData, len(evs))
	for i, e := range evs {
		t, b, err := Encode(e)
		if err != nil {
			return nil, err
		}
		out[i] = domain.EventData{ID: ids[i], Type: t, Data: b, Metadata: mb}
	}
	return out, nil
}

// EncodeEvent is EncodeEvents of one event.
func EncodeEvent(id domain.UUID, e Event, meta domain.Metadata) (domain.EventData, error) {
	out, err := EncodeEvents([]Event{e}, []domain.UUID{id}, meta)
	if err != nil {
		return domain.EventData{}, err
	}
	return out[0], nil
}

// Decode returns the payload of a room event, or an error naming the
// event when its type is unknown or its data does not decode. Events of
// other kinds on a room stream (added by later features) return nil, nil
// when tolerateUnknown is set.
func Decode(ev domain.RecordedEvent, tolerateUnknown bool) (Event, error) {
	decode, ok := decoders[ev.Type]
	if !ok {
		if tolerateUnknown {
			return nil, nil
		}
		return nil, fmt.Errorf("decode %s@%d (position %s): unknown event type %q", ev.Stream, ev.Version, ev.Position, ev.Type)
	}
	p, err := decode(ev.Data)
	if err != nil {
		return nil, fmt.Errorf("decode %s %s@%d (position %s): %w", ev.Type, ev.Stream, ev.Version, ev.Position, err)
	}
	return p, nil
}

// SecretFields lists, for an event type, the fields of its data that
// carry what a person wrote or what was said to them: the privacy codec
// seals them, and leaves every other field (types, ids, versions, user
// ids, document ids, scores) in clear so the log can be routed, verified
// and audited without keys. A path's parts are object keys, "*" stands for
// every element of an array. Types not listed carry no content.
func SecretFields(eventType string) []string { return secretFields[eventType] }

var secretFields = map[string][]string{
	TypeRoomCreated:   {"title"},
	TypeMessagePosted: {"text"},
	// A chunk's delta ends and emit offsets go with its text: an erased
	// chunk is then a single empty delta, which still decodes.
	TypeAnswerChunk:       {"delta", "ends", "offsets_ms"},
	TypeAnswerCompleted:   {"text", "sources.*.title", "sources.*.snippet"},
	TypeAnswerFailed:      {"text"},
	TypeAnswerCancelled:   {"text"},
	TypeRetrievalRecorded: {"query", "error", "rewrite.queries", "rewrite.error", "retrievers.*.query"},
	TypeSummaryUpdated:    {"summary"},
}
