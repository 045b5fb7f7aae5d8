package wsapi

import (
	"encoding/json"

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
	}
	chunkFrame struct {
		Type        string `json:"type"`
		AnswerID    string `json:"answer_id"`
		Seq         int    `json:"seq"`
		Deltas      int    `json:"deltas"`
		Message     string `json:"message"`
		IsStreaming bool   `json:"is_streaming"`
		Version     int64  `json:"version"`
	}
	answerFrame struct {
		Type        string        `json:"type"`
		AnswerID    string        `json:"answer_id"`
		Message     string        `json:"message"`
		IsStreaming bool          `json:"is_streaming"`
		Sources     []room.Source `json:"sources"`
		Version     int64         `json:"version"`
	}
	endFrame struct {
		Type        string `json:"type"`
		AnswerID    string `json:"answer_id"`
		Reason      string `json:"reason"`
		IsStreaming bool   `json:"is_streaming"`
		Version     int64  `json:"version"`
	}
	historyFrame struct {
		Type     string         `json:"type"`
		Messages []wire.Message `json:"messages"` // the objects of GET /api/rooms/{id}/messages
		Version  int64          `json:"version"`
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
	close   int // non-zero: close with this code once the frames before it are written
}

// eventFrame encodes the frame a client sees for ev, or reports false for
// events clients do not see (RoomCreated, AnswerStarted, later kinds).
func eventFrame(ev domain.RecordedEvent) (frame, bool, error) {
	p, err := room.Decode(ev, true)
	if err != nil {
		return frame{}, false, err
	}
	var v any
	switch e := p.(type) {
	case room.MessagePosted:
		v = messageFrame{Type: "message", Role: room.RoleUser, ID: e.MessageID.String(), Message: e.Text, ClientID: e.ClientID, Version: ev.Version}
	case room.AnswerChunk:
		v = chunkFrame{Type: "chunk", AnswerID: e.AnswerID.String(), Seq: e.Seq, Deltas: e.Count(), Message: e.Delta, IsStreaming: true, Version: ev.Version}
	case room.AnswerCompleted:
		src := e.Sources
		if src == nil {
			src = []room.Source{}
		}
		v = answerFrame{Type: "answer", AnswerID: e.AnswerID.String(), Message: e.Text, Sources: src, Version: ev.Version}
	case room.AnswerFailed:
		v = endFrame{Type: "answer_failed", AnswerID: e.AnswerID.String(), Reason: e.Reason, Version: ev.Version}
	case room.AnswerCancelled:
		v = endFrame{Type: "answer_cancelled", AnswerID: e.AnswerID.String(), Reason: e.Reason, Version: ev.Version}
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

func encodeHistory(h *room.History) (frame, error) {
	b, err := json.Marshal(historyFrame{Type: "history", Messages: wire.Messages(h.Messages), Version: h.Version})
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
