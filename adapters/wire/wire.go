package wire

import (
	"time"

	"github.com/parleychat/parley/domain/room"
)

// TimeLayout is how every time is written on the wire: RFC 3339 in UTC
// with exactly three fractional digits, 2025-11-24T20:47:03.512Z.
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// Time formats t as TimeLayout, in UTC.
func Time(t time.Time) string { return t.UTC().Format(TimeLayout) }

// Message is a room's message as clients see it, in a WebSocket history
// frame and from GET /api/rooms/{id}/messages alike.
type Message struct {
	ID      string `json:"id"`
	Role    string `json:"role"`
	Message string `json:"message"`
	Status  string `json:"status"`
	// Sources is never nil: [] for user messages and for answers that are
	// not complete.
	Sources []room.Source `json:"sources"`
	// ClientID is the client_id the user message was posted with, when it
	// had one; a client matches its own sends by it.
	ClientID  string `json:"client_id,omitempty"`
	CreatedAt string `json:"created_at"`
	Version   int64  `json:"version"`
}

// MessageOf returns m as clients see it.
func MessageOf(m room.Message) Message {
	sources := m.Sources
	if sources == nil || m.Status != room.StatusComplete {
		sources = []room.Source{}
	}
	return Message{ID: m.ID.String(), Role: m.Role, Message: m.Text, Status: m.Status, Sources: sources,
		ClientID: m.ClientID, CreatedAt: Time(m.CreatedAt), Version: m.Version}
}

// Messages returns ms as clients see them, in the same order.
func Messages(ms []room.Message) []Message {
	out := make([]Message, len(ms))
	for i, m := range ms {
		out[i] = MessageOf(m)
	}
	return out
}
