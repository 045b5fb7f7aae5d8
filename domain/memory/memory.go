package memory

import (
	"context"
	"fmt"
	"slices"

	"github.com/parleychat/parley/domain"
	"github.com/parleychat/parley/domain/room"
)

// DefaultMaxTokenLimit is the buffer's default budget in tokens.
const DefaultMaxTokenLimit = 200

// TokenCounter counts the tokens of a text as a model would. It must be
// safe for concurrent use.
type TokenCounter interface {
	Count(text string) int
}

// Summarizer folds turns into a summary. It must be safe for concurrent
// use.
type Summarizer interface {
	// Summarize returns a new summary of the conversation: previous (the
	// summary so far, possibly empty) extended with turns, oldest first.
	Summarize(ctx context.Context, previous string, turns []Turn) (string, error)
	// Name identifies the summariser in SummaryUpdated events (e.g.
	// "extractive", "ollama/llama3.2").
	Name() string
}

// Turn is one exchange of a conversation: a question and its answer.
type Turn struct {
	Question string `json:"question"`
	// Answer is the completed answer's text; empty while the answer is
	// open and when it failed or was cancelled.
	Answer string `json:"answer,omitempty"`
	// QuestionVersion is the stream version of the question's
	// MessagePosted.
	QuestionVersion int64 `json:"question_version"`
	// EndVersion is the stream version of the event that ended the answer
	// (AnswerCompleted, AnswerFailed or AnswerCancelled). It is meaningless
	// while the turn is Open.
	EndVersion int64 `json:"end_version"`
	// Open reports that the question's answer has not ended yet.
	Open bool `json:"open,omitempty"`
	// AnswerID is the answer streaming for the question while Open.
	AnswerID domain.UUID `json:"answer_id,omitzero"`
}

// Tokens is the turn's size in the buffer: its question's and its answer's
// tokens.
func (t Turn) Tokens(count TokenCounter) int {
	n := count.Count(t.Question)
	if t.Answer != "" {
		n += count.Count(t.Answer)
	}
	return n
}

// Conversation is a room's memory folded from its stream: the latest
// summary and the turns it does not cover. The zero value is not ready for
// use: start from NewConversation or from a stored copy.
type Conversation struct {
	// Summary is the latest summary; empty before the first.
	Summary string
	// Through is the stream version the summary covers through
	// (SummaryUpdated.CoversThroughVersion); domain.NoVersion before the
	// first summary.
	Through int64
	// Turns are the turns the summary does not cover, oldest first: the
	// buffer. Only the last one may be Open.
	Turns []Turn
	// Version is the last stream version folded in; domain.NoVersion
	// before any.
	Version int64
	// Deleted reports that the room was deleted; its memory is then empty.
	Deleted bool
}

// NewConversation returns the memory of a room with no events.
func NewConversation() *Conversation {
	return &Conversation{Through: domain.NoVersion, Version: domain.NoVersion}
}

// foldedTypes are the event types the memory reads (Folds).
var foldedTypes = []string{room.TypeMessagePosted, room.TypeAnswerStarted, room.TypeAnswerCompleted, room.TypeAnswerFailed,
	room.TypeAnswerCancelled, room.TypeSummaryUpdated, room.TypeRoomDeleted, room.TypeRoomErased}

// Folds reports whether the memory reads events of type t: questions, the
// start and end of answers, summaries and the room's deletion or erasure.
// Events of other types (answer chunks above all) change nothing but its
// version.
func Folds(t string) bool { return slices.Contains(foldedTypes, t) }

// Apply folds one event of the room's stream in. Events at or below
// Version are ignored, so applying an event twice changes nothing.
//
// Only the event types the memory folds are decoded: questions, the
// start and end of answers, summaries and the room's deletion or erasure. The error
// names such an event that does not decode, and Version stays put. Every
// other type (answer chunks above all, the bulk of a stream) only
// advances Version, undecoded: its data is not checked here, so a
// malformed chunk is not an error of the memory.
func (c *Conversation) Apply(ev domain.RecordedEvent) error {
	if ev.Version <= c.Version {
		return nil
	}
	if !Folds(ev.Type) {
		c.Version = ev.Version
		return nil
	}
	p, err := room.Decode(ev, false)
	if err != nil {
		return err
	}
	c.Version = ev.Version
	switch e := p.(type) {
	case room.MessagePosted:
		if n := len(c.Turns); n > 0 && c.Turns[n-1].Open {
			// A question is only posted once the previous answer ended;
			// a log that says otherwise closes that turn unanswered.
			c.Turns[n-1].Open, c.Turns[n-1].EndVersion, c.Turns[n-1].AnswerID = false, ev.Version-1, domain.UUID{}
		}
		c.Turns = append(c.Turns, Turn{Question: e.Text, QuestionVersion: ev.Version, EndVersion: ev.Version, Open: true})
	case room.AnswerStarted:
		if t := c.open(); t != nil {
			t.AnswerID = e.AnswerID
		}
	case room.AnswerCompleted:
		c.end(e.AnswerID, e.Text, ev.Version)
	case room.AnswerFailed:
		c.end(e.AnswerID, "", ev.Version)
	case room.AnswerCancelled:
		c.end(e.AnswerID, "", ev.Version)
	case room.SummaryUpdated:
		c.summarised(e.Summary, e.CoversThroughVersion)
	case room.RoomDeleted, room.RoomErased:
		c.Summary, c.Turns, c.Deleted = "", nil, true
	}
	return nil
}

// Start begins a conversation from a summary, as of the summary's covered
// version: events are then applied from Through+1 on (the summary event
// itself, recorded later, changes nothing).
func Start(summary string, through int64) *Conversation {
	return &Conversation{Summary: summary, Through: through, Version: through}
}

func (c *Conversation) open() *Turn {
	if n := len(c.Turns); n > 0 && c.Turns[n-1].Open {
		return &c.Turns[n-1]
	}
	return nil
}

func (c *Conversation) end(answer domain.UUID, text string, version int64) {
	t := c.open()
	if t == nil || t.AnswerID != answer {
		return
	}
	t.Answer, t.EndVersion, t.Open, t.AnswerID = text, version, false, domain.UUID{}
}

// summarised takes a summary covering through: it drops the turns that
// ended at or before it. An older summary than the one held is ignored.
func (c *Conversation) summarised(summary string, through int64) {
	if through <= c.Through {
		return
	}
	c.Summary, c.Through = summary, through
	keep := c.Turns[:0]
	for _, t := range c.Turns {
		if t.Open || t.EndVersion > through {
			keep = append(keep, t)
		}
	}
	clear(c.Turns[len(keep):])
	c.Turns = keep
}

// Clone returns a deep copy of c.
func (c *Conversation) Clone() *Conversation {
	d := *c
	d.Turns = append([]Turn(nil), c.Turns...)
	return &d
}

// Plan returns how many of the oldest turns to fold into the summary so
// that the rest fit in limit tokens: 0 when they already fit. Only ended
// turns count and are folded, oldest first and whole: an open turn (a
// question still being answered) is not yet part of the buffer. As in
// LangChain, the buffer may end up empty when the newest turn alone
// exceeds the limit.
func Plan(turns []Turn, count TokenCounter, limit int) int {
	sizes := make([]int, len(turns))
	total := 0
	for i, t := range turns {
		if t.Open {
			break
		}
		sizes[i] = t.Tokens(count)
		total += sizes[i]
	}
	n := 0
	for total > limit && n < len(turns) && !turns[n].Open {
		total -= sizes[n]
		n++
	}
	return n
}

// validLimit checks a token limit from a configuration.
func validLimit(name string, v int) error {
	if v < 0 {
		return fmt.Errorf("memory config: %s %d is negative", name, v)
	}
	return nil
}
