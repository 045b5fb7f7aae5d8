package wsapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/parleychat/parley/adapters/strictjson"
	"github.com/parleychat/parley/adapters/wire"
	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
)

// Server frames. Frames that come from events carry the event's version.
type (
	messageFrame struct {
		Type     string `json:"type"`
		Role     string `json:"role"`
		ID       string `json:"id"`
		Message  string `json:"message"`
		ClientID string `json:"client_id,omitempty"`
		Version  int64  `json:"version"`
		Hash     string `json:"hash,omitempty"`
	}
	chunkFrame struct {
		Type        string `json:"type"`
		AnswerID    string `json:"answer_id"`
		Seq         int    `json:"seq"`
		Deltas      int    `json:"deltas"`
		Message     string `json:"message"`
		IsStreaming bool   `json:"is_streaming"`
		Version     int64  `json:"version"`
		Hash        string `json:"hash,omitempty"`
	}
	answerFrame struct {
		Type        string        `json:"type"`
		AnswerID    string        `json:"answer_id"`
		Message     string        `json:"message"`
		IsStreaming bool          `json:"is_streaming"`
		Sources     []room.Source `json:"sources"`
		Version     int64         `json:"version"`
		Hash        string        `json:"hash,omitempty"`
	}
	endFrame struct {
		Type        string `json:"type"`
		AnswerID    string `json:"answer_id"`
		Reason      string `json:"reason"`
		IsStreaming bool   `json:"is_streaming"`
		Version     int64  `json:"version"`
		Hash        string `json:"hash,omitempty"`
	}
	historyFrame struct {
		Type string `json:"type"`
		// Messages are the objects of GET /api/rooms/{id}/messages
		// (wire.Message), the newest that fit the cap, oldest first.
		Messages []json.RawMessage `json:"messages"`
		// NextBefore is the version of the oldest message sent when older
		// ones were left out (the cap): GET /api/rooms/{id}/messages?before=
		// it pages through them. Null when the frame holds them all.
		NextBefore *int64 `json:"next_before"`
		Version    int64  `json:"version"`
		Hash       string `json:"hash,omitempty"`
	}
	errorFrame struct {
		Type     string `json:"type"`
		Code     string `json:"code"`
		Message  string `json:"message"`
		ClientID string `json:"client_id,omitempty"` // of the refused message frame
	}
)

// frame is an encoded server frame. Event frames carry their version;
// others (errors, pongs) have version -1 and are never de-duplicated.
type frame struct {
	version int64
	kind    string
	data    []byte
	close   disconnect // a code: close so once the frames before it are written
}

// eventFrame encodes the frame a client sees for ev, or reports false for
// events clients do not see (RoomCreated, AnswerStarted, later kinds).
func eventFrame(ev domain.RecordedEvent) (frame, bool, error) {
	if room.IsChunk(ev.Type) {
		if b, ok := chunkFrameOf(ev.Data, ev.Version, domain.ChainHash(ev.Metadata)); ok {
			return frame{version: ev.Version, kind: "chunk", data: b}, true, nil
		}
	}
	p, err := room.Decode(ev, true)
	if err != nil {
		return frame{}, false, err
	}
	var v any
	hash := domain.ChainHash(ev.Metadata)
	switch e := p.(type) {
	case room.MessagePosted:
		v = messageFrame{Type: "message", Role: room.RoleUser, ID: e.MessageID.String(), Message: e.Text, ClientID: e.ClientID, Version: ev.Version, Hash: hash}
	case room.AnswerChunk:
		v = chunkFrame{Type: "chunk", AnswerID: e.AnswerID.String(), Seq: e.Seq, Deltas: e.Count(), Message: e.Delta, IsStreaming: true, Version: ev.Version, Hash: hash}
	case room.AnswerCompleted:
		src := e.Sources
		if src == nil {
			src = []room.Source{}
		}
		v = answerFrame{Type: "answer", AnswerID: e.AnswerID.String(), Message: e.Text, Sources: src, Version: ev.Version, Hash: hash}
	case room.AnswerFailed:
		v = endFrame{Type: "answer_failed", AnswerID: e.AnswerID.String(), Reason: e.Reason, Version: ev.Version, Hash: hash}
	case room.AnswerCancelled:
		v = endFrame{Type: "answer_cancelled", AnswerID: e.AnswerID.String(), Reason: e.Reason, Version: ev.Version, Hash: hash}
	default:
		return frame{}, false, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return frame{}, false, err
	}
	return frame{version: ev.Version, kind: frameKind(v), data: b}, true, nil
}

func frameKind(v any) string {
	switch f := v.(type) {
	case messageFrame:
		return f.Type
	case chunkFrame:
		return f.Type
	case answerFrame:
		return f.Type
	case endFrame:
		return f.Type
	}
	return "other"
}

// encodeHistory encodes the history frame of h, whose last event's hash
// is hash: its newest messages, at most maxMessages of them and, past the
// newest, at most maxBytes of their encoding (see Config.HistoryMessages).
func encodeHistory(h *room.History, hash string, maxMessages, maxBytes int) (frame, error) {
	var msgs []json.RawMessage
	size := 0
	for i := len(h.Messages) - 1; i >= 0 && len(msgs) < maxMessages; i-- {
		b, err := json.Marshal(wire.MessageOf(h.Messages[i]))
		if err != nil {
			return frame{}, err
		}
		if size += len(b); size > maxBytes && len(msgs) > 0 {
			break
		}
		msgs = append(msgs, b)
	}
	slices.Reverse(msgs)
	f := historyFrame{Type: "history", Messages: msgs, Version: h.Version, Hash: hash}
	if msgs == nil {
		f.Messages = []json.RawMessage{}
	}
	if n := len(msgs); n < len(h.Messages) {
		v := h.Messages[len(h.Messages)-n].Version
		f.NextBefore = &v
	}
	b, err := json.Marshal(f)
	return frame{version: h.Version, kind: "history", data: b}, err
}

func encodeError(code, msg, clientID string) frame {
	b, _ := json.Marshal(errorFrame{Type: "error", Code: code, Message: msg, ClientID: clientID})
	return frame{version: -1, kind: "error", data: b}
}

var pongFrame = frame{version: -1, kind: "pong", data: []byte(`{"type":"pong"}`)}

// clientFrame is what clients send.
type clientFrame struct {
	Type     string  `json:"type"`
	Message  *string `json:"message"`
	ClientID string  `json:"client_id"`
}

// chunkFrameOf writes the chunk frame of an AnswerChunk whose data has the
// form encoding/json gives it ({"answer_id":"<lower-case uuid>","seq":N,
// "delta":"…"} and, for several deltas, ,"ends":[…],"offsets_ms":[…]),
// copying the delta's JSON string as it is, without decoding the event:
// chunks are most of the frames. For any other form it reports false, and
// the event is decoded. hash is the event's chain hash (domain.ChainHash:
// hex, or "" for none). What it writes is what json.Marshal writes for
// the decoded chunk (see TestChunkFrameOfMatchesTheDecodedFrame).
func chunkFrameOf(data []byte, version int64, hash string) ([]byte, bool) {
	const (
		head   = `{"answer_id":"`
		seqKey = `","seq":`
		delta  = `,"delta":`
		ends   = `,"ends":[`
		offs   = `],"offsets_ms":[`
	)
	rest, ok := bytes.CutPrefix(data, []byte(head))
	if !ok || len(rest) < 36 || !canonicalUUID(rest[:36]) {
		return nil, false
	}
	id := rest[:36]
	if rest, ok = bytes.CutPrefix(rest[36:], []byte(seqKey)); !ok {
		return nil, false
	}
	seq, rest, ok := cutInt(rest)
	if !ok {
		return nil, false
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(delta)); !ok {
		return nil, false
	}
	text, rest, ok := cutString(rest)
	if !ok || len(text) <= 2 { // a chunk's text is never empty
		return nil, false
	}
	n := 1
	if list, ok := bytes.CutPrefix(rest, []byte(ends)); ok {
		i := bytes.Index(list, []byte(offs))
		if i <= 0 || !bytes.HasSuffix(list, []byte("]}")) {
			return nil, false
		}
		n += bytes.Count(list[:i], []byte(",")) + 1
		if bytes.Count(list[i+len(offs):len(list)-2], []byte(","))+2 != n {
			return nil, false
		}
	} else if string(rest) != "}" {
		return nil, false
	}
	b := make([]byte, 0, 120+len(text)+len(hash))
	b = append(b, `{"type":"chunk","answer_id":"`...)
	b = append(b, id...)
	b = append(b, `","seq":`...)
	b = append(b, seq...)
	b = append(b, `,"deltas":`...)
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, `,"message":`...)
	b = append(b, text...)
	b = append(b, `,"is_streaming":true,"version":`...)
	b = strconv.AppendInt(b, version, 10)
	if hash != "" {
		b = append(b, `,"hash":"`...)
		b = append(b, hash...)
		b = append(b, '"')
	}
	return append(b, '}'), true
}

// canonicalUUID reports whether b is a UUID as domain.UUID.String writes
// it: lower-case hex, dashes at 8, 13, 18 and 23.
func canonicalUUID(b []byte) bool {
	for i, c := range b {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return true
}

// cutInt cuts a non-negative JSON integer (as json.Marshal writes an int)
// from the start of b.
func cutInt(b []byte) (num, rest []byte, ok bool) {
	i := 0
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	if i == 0 || i > 18 || i > 1 && b[0] == '0' {
		return nil, nil, false
	}
	return b[:i], b[i:], true
}

// cutString cuts a JSON string literal, quotes included, from the start
// of b. It checks only where the string ends: the store refuses data that
// is not JSON.
func cutString(b []byte) (str, rest []byte, ok bool) {
	if len(b) == 0 || b[0] != '"' {
		return nil, nil, false
	}
	for i := 1; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return b[:i+1], b[i+1:], true
		}
	}
	return nil, nil, false
}

// parseClientFrame decodes a client's text frame strictly (strictjson: a
// JSON object, keys spelt exactly, none unknown or twice) and checks what
// the frame's type needs. Its error is the message of an error frame with
// code invalid; the frame's client_id, when it could be read, is kept
// for it.
func parseClientFrame(data []byte) (clientFrame, error) {
	var cf clientFrame
	if err := strictjson.DecodeObject(data, &cf); err != nil {
		return clientFrame{}, err
	}
	if cf.ClientID != "" {
		if _, err := domain.ParseUUID(cf.ClientID); err != nil {
			cf.ClientID = "" // never echoed: it may be anything, of any length
			return cf, errors.New("client_id must be a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")
		}
	}
	switch cf.Type {
	case "", "message":
		if cf.Message == nil {
			return cf, errors.New(`a message frame needs "message"`)
		}
	case "cancel", "ping":
		if cf.Message != nil || cf.ClientID != "" {
			return cf, fmt.Errorf("a %s frame has only \"type\"", cf.Type)
		}
	default:
		return cf, fmt.Errorf("unknown frame type %s", strconv.Quote(truncate(cf.Type, 40)))
	}
	return cf, nil
}
