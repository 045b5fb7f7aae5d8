package room

import (
	"strings"
	"time"
	"unicode/utf8"

	"github.com/parleychat/parley/domain"
)

// Limits on what users send.
const (
	MaxMessageBytes = 8 << 10
	MaxTitleRunes   = 200
)

// OpenAnswer is the answer streaming in a room, if any.
type OpenAnswer struct {
	AnswerID   domain.UUID
	QuestionID domain.UUID
	Instance   string
	NextSeq    int
	Text       strings.Builder
	StartedAt  time.Time
	LastAt     time.Time // when its last event was recorded
}

// State is a room as its decisions need it, folded from its stream.
type State struct {
	ID        int64
	Owner     string
	Title     string
	CreatedAt time.Time
	Deleted   bool
	// Erased is set by RoomErased (Deleted is too): the room's content is
	// gone with its key.
	Erased  bool
	Version int64 // the last event folded in; domain.NoVersion before any
	Open    *OpenAnswer
	// Recent holds the last MaxRecent user messages and completed answers,
	// oldest first: the conversation a generator is shown.
	Recent []Turn
	// Summary is the room's latest conversation summary (SummaryUpdated)
	// and SummaryThrough the stream version it covers through, NoVersion
	// before the first: the messages of Recent after it are the summary
	// buffer's verbatim part (Buffer).
	Summary        string
	SummaryThrough int64
	posted         map[domain.UUID]bool
}

// Turn is a message of Recent.
type Turn struct {
	Role string // RoleUser or RoleAssistant
	Text string
	// Version is the stream version of the event that recorded it: the
	// MessagePosted of a question, the AnswerCompleted of an answer.
	Version int64
}

// MaxRecent bounds State.Recent.
const MaxRecent = 20

func (s *State) remember(role, text string, version int64) {
	s.Recent = append(s.Recent, Turn{Role: role, Text: text, Version: version})
	if n := len(s.Recent) - MaxRecent; n > 0 {
		s.Recent = append(s.Recent[:0], s.Recent[n:]...)
	}
}

// NewState is the state of a room with no events.
func NewState() *State {
	return &State{Version: domain.NoVersion, SummaryThrough: domain.NoVersion, posted: map[domain.UUID]bool{}}
}

// Buffer returns a copy of the messages of Recent that the summary does
// not cover, oldest first.
func (s *State) Buffer() []Turn {
	for i, t := range s.Recent {
		if t.Version > s.SummaryThrough {
			return append([]Turn(nil), s.Recent[i:]...)
		}
	}
	return nil
}

// Exists reports whether the room was created and not deleted.
func (s *State) Exists() bool { return s.Version >= 0 && !s.Deleted }

// Posted reports whether a message with this ID is already in the room.
func (s *State) Posted(id domain.UUID) bool { return s.posted[id] }

// Evolve folds one recorded event into s. Events of types this package
// does not know are skipped (they only advance the version).
func (s *State) Evolve(ev domain.RecordedEvent) error {
	p, err := Decode(ev, true)
	if err != nil {
		return err
	}
	s.Version = ev.Version
	switch e := p.(type) {
	case RoomCreated:
		s.ID, s.Owner, s.Title, s.CreatedAt = e.RoomID, e.OwnerID, e.Title, ev.RecordedAt
	case RoomDeleted:
		s.Deleted = true
	case RoomErased:
		s.Deleted, s.Erased, s.Open, s.Recent, s.Summary, s.Title = true, true, nil, nil, "", ""
	case MessagePosted:
		s.posted[e.MessageID] = true
		s.remember(RoleUser, e.Text, ev.Version)
	case AnswerStarted:
		s.Open = &OpenAnswer{AnswerID: e.AnswerID, QuestionID: e.QuestionID, Instance: e.Instance, StartedAt: ev.RecordedAt, LastAt: ev.RecordedAt}
	case RetrievalRecorded:
		if s.Open != nil && s.Open.AnswerID == e.AnswerID {
			s.Open.LastAt = ev.RecordedAt
		}
	case AnswerChunk:
		if s.Open != nil && s.Open.AnswerID == e.AnswerID {
			s.Open.Text.WriteString(e.Delta)
			s.Open.NextSeq = e.Seq + e.Count()
			s.Open.LastAt = ev.RecordedAt
		}
	case AnswerCompleted:
		if s.Open != nil && s.Open.AnswerID == e.AnswerID {
			s.remember(RoleAssistant, e.Text, ev.Version)
		}
		s.closeAnswer(e.AnswerID)
	case AnswerFailed:
		s.closeAnswer(e.AnswerID)
	case AnswerCancelled:
		s.closeAnswer(e.AnswerID)
	case SummaryUpdated:
		if e.CoversThroughVersion > s.SummaryThrough {
			s.Summary, s.SummaryThrough = e.Summary, e.CoversThroughVersion
		}
	}
	return nil
}

func (s *State) closeAnswer(id domain.UUID) {
	if s.Open != nil && s.Open.AnswerID == id {
		s.Open = nil
	}
}

// Errors of the decisions. Their codes are what transports map.
var (
	ErrNotFound  = domain.Errorf(domain.ENOTFOUND, "no such room")
	ErrForbidden = domain.Errorf(domain.EFORBIDDEN, "only the room's owner may do this")
	ErrBusy      = domain.Errorf(domain.EBUSY, "an answer is already streaming in this room; send again after it ends")
	ErrNoAnswer  = domain.Errorf(domain.EINVALID, "no answer is streaming in this room")
)

// ValidateTitle checks a room title.
func ValidateTitle(title string) (string, error) {
	t := strings.TrimSpace(title)
	switch {
	case !utf8.ValidString(t) || strings.ContainsRune(t, 0):
		return "", domain.Errorf(domain.EINVALID, "title must be valid UTF-8 text without NUL characters")
	case t == "":
		return "", domain.Errorf(domain.EINVALID, "title must not be empty")
	case utf8.RuneCountInString(t) > MaxTitleRunes:
		return "", domain.Errorf(domain.EINVALID, "title is longer than %d characters", MaxTitleRunes)
	}
	return t, nil
}

// ValidateMessage checks the text of a user message.
func ValidateMessage(text string) error {
	switch {
	case len(text) > MaxMessageBytes:
		return domain.Errorf(domain.ETOOLARGE, "message is %d bytes, over the %d byte limit", len(text), MaxMessageBytes)
	case !utf8.ValidString(text):
		return domain.Errorf(domain.EINVALID, "message is not valid UTF-8")
	case strings.ContainsRune(text, 0):
		return domain.Errorf(domain.EINVALID, "message contains a NUL character")
	case strings.TrimSpace(text) == "":
		return domain.Errorf(domain.EINVALID, "message is empty")
	}
	return nil
}

// Create decides on creating room id for owner.
func Create(s *State, id int64, owner, title string) ([]Event, error) {
	if s.Version >= 0 {
		return nil, domain.Errorf(domain.ECONFLICT, "room %d already exists", id)
	}
	t, err := ValidateTitle(title)
	if err != nil {
		return nil, err
	}
	if owner == "" {
		return nil, domain.Errorf(domain.EINVALID, "a room needs an owner")
	}
	return []Event{RoomCreated{RoomID: id, OwnerID: owner, Title: t}}, nil
}

// Post is the command to post a question and open its answer.
type Post struct {
	UserID    string
	Text      string
	ClientID  string
	MessageID domain.UUID
	AnswerID  domain.UUID
	Model     string
	Instance  string
}

// Authorize checks that user may use the room: it exists and user owns it.
// A missing room and a foreign room are told apart only by the error code.
func Authorize(s *State, user string) error {
	if !s.Exists() {
		return ErrNotFound
	}
	if s.Owner != user {
		return ErrForbidden
	}
	return nil
}

// PostMessage decides on a question. A message ID already in the room
// (a retried send) decides nothing and returns no error: the earlier post
// stands and is not answered twice.
func PostMessage(s *State, c Post) ([]Event, error) {
	if err := Authorize(s, c.UserID); err != nil {
		return nil, err
	}
	if err := ValidateMessage(c.Text); err != nil {
		return nil, err
	}
	if s.posted[c.MessageID] {
		return nil, nil
	}
	if s.Open != nil {
		return nil, ErrBusy
	}
	return []Event{
		MessagePosted{MessageID: c.MessageID, ClientID: c.ClientID, UserID: c.UserID, Text: c.Text},
		AnswerStarted{AnswerID: c.AnswerID, QuestionID: c.MessageID, Model: c.Model, Instance: c.Instance},
	}, nil
}

// Cancel decides on cancelling the open answer.
func Cancel(s *State, user string) ([]Event, error) {
	if err := Authorize(s, user); err != nil {
		return nil, err
	}
	if s.Open == nil {
		return nil, ErrNoAnswer
	}
	return []Event{AnswerCancelled{AnswerID: s.Open.AnswerID, Reason: ReasonCancelled, By: user, Text: s.Open.Text.String()}}, nil
}

// Delete decides on deleting the room; an open answer is cancelled first.
func Delete(s *State, user string) ([]Event, error) {
	if err := Authorize(s, user); err != nil {
		return nil, err
	}
	var out []Event
	if s.Open != nil {
		out = append(out, AnswerCancelled{AnswerID: s.Open.AnswerID, Reason: ReasonRoomDeleted, By: user, Text: s.Open.Text.String()})
	}
	return append(out, RoomDeleted{RoomID: s.ID, DeletedBy: user}), nil
}

// Fail decides on failing the open answer id (crash recovery, shutdown,
// generator errors). It decides nothing when that answer is not open.
func Fail(s *State, id domain.UUID, reason string) []Event {
	if s.Open == nil || s.Open.AnswerID != id {
		return nil
	}
	return []Event{AnswerFailed{AnswerID: id, Reason: reason, Text: s.Open.Text.String()}}
}
