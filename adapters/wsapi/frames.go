package wsapi

import (
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
		v = chunkFrame{Type: "chunk", AnswerID: e.AnswerID.String(), Seq: e.Seq, Message: e.Delta, IsStreaming: true, Version: ev.Version, Hash: hash}
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
