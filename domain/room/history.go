package room

import (
	"time"

	"github.com/parleychat/parley/domain"
)

// Message statuses.
const (
	StatusComplete  = "complete"
	StatusStreaming = "streaming"
	StatusFailed    = "failed"
	StatusCancelled = "cancelled"
)

// Message is one entry of a room's conversation: a user message or an
// assistant answer.
type Message struct {
	ID        domain.UUID
	Role      string // "user" or "assistant"
	Text      string
	Status    string
	Sources   []Source
	ClientID  string
	CreatedAt time.Time
	UpdatedAt time.Time
	// Version is the stream version of the last event folded into it.
	Version int64
}

// History is a room's conversation folded from its events; the same fold
// backs the ChatLog read model.
type History struct {
	Messages []Message
	// Version is the last event folded in.
	Version int64
	index   map[domain.UUID]int
}

// NewHistory returns the history of a room with no events.
func NewHistory() *History { return &History{Version: domain.NoVersion, index: map[domain.UUID]int{}} }

// Load starts a history from messages already folded up to version (a
// read-model page), so later events can be applied on top.
func (h *History) Load(msgs []Message, version int64) {
	h.Messages = msgs
	h.Version = version
	h.index = make(map[domain.UUID]int, len(msgs))
	for i, m := range msgs {
		h.index[m.ID] = i
	}
}

// Apply folds one event in. Events at or below Version are ignored, so
// overlapping a read-model page with a stream read is harmless.
func (h *History) Apply(ev domain.RecordedEvent) error {
	if ev.Version <= h.Version {
		return nil
	}
	p, err := Decode(ev, true)
	if err != nil {
		return err
	}
	h.Version = ev.Version
	at := ev.RecordedAt
	switch e := p.(type) {
	case MessagePosted:
		h.add(Message{ID: e.MessageID, Role: RoleUser, Text: e.Text, Status: StatusComplete, ClientID: e.ClientID, CreatedAt: at, UpdatedAt: at, Version: ev.Version})
	case AnswerStarted:
		h.add(Message{ID: e.AnswerID, Role: RoleAssistant, Status: StatusStreaming, CreatedAt: at, UpdatedAt: at, Version: ev.Version})
	case AnswerChunk:
		// Only an answer still streaming takes chunks: one that came after
		// its end, or for no answer, changes nothing (the ChatLog, which
		// writes an answer's text from its end, agrees).
		if i, ok := h.index[e.AnswerID]; ok && h.Messages[i].Status == StatusStreaming {
			h.update(e.AnswerID, ev.Version, at, func(m *Message) { m.Text += e.Delta })
		}
	case AnswerCompleted:
		h.update(e.AnswerID, ev.Version, at, func(m *Message) { m.Text, m.Status, m.Sources = e.Text, StatusComplete, e.Sources })
	case AnswerFailed:
		h.update(e.AnswerID, ev.Version, at, func(m *Message) { m.Text, m.Status = e.Text, StatusFailed })
	case AnswerCancelled:
		h.update(e.AnswerID, ev.Version, at, func(m *Message) { m.Text, m.Status = e.Text, StatusCancelled })
	case SummaryUpdated:
		// Memory, not conversation: no message changes.
	}
	return nil
}

// Roles of history messages.
const (
	RoleUser      = "user"
	RoleAssistant = "assistant"
)

func (h *History) add(m Message) {
	if h.index == nil {
		h.index = map[domain.UUID]int{}
	}
	h.index[m.ID] = len(h.Messages)
	h.Messages = append(h.Messages, m)
}

func (h *History) update(id domain.UUID, version int64, at time.Time, f func(*Message)) {
	i, ok := h.index[id]
	if !ok {
		return
	}
	m := &h.Messages[i]
	f(m)
	m.Version, m.UpdatedAt = version, at
}
