package room

import (
	"strconv"
	"strings"

	"github.com/parleychat/parley/domain"
)

// Stored event type names. They are part of the log's format: never
// rename one.
const (
	TypeRoomCreated       = "RoomCreated"
	TypeRoomDeleted       = "RoomDeleted"
	TypeMessagePosted     = "MessagePosted"
	TypeAnswerStarted     = "AnswerStarted"
	TypeAnswerChunk       = "AnswerChunk"
	TypeAnswerCompleted   = "AnswerCompleted"
	TypeAnswerFailed      = "AnswerFailed"
	TypeAnswerCancelled   = "AnswerCancelled"
	TypeRetrievalRecorded = "RetrievalRecorded"
	TypeSummaryUpdated    = "SummaryUpdated"
)

// StreamPrefix starts every room stream's name.
const StreamPrefix = "room-"

// Stream returns the stream name of room id.
func Stream(id int64) string { return StreamPrefix + strconv.FormatInt(id, 10) }

// ParseStream returns the room id of a room stream name.
func ParseStream(stream string) (int64, bool) {
	rest, ok := strings.CutPrefix(stream, StreamPrefix)
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseInt(rest, 10, 64)
	if err != nil || id <= 0 || strconv.FormatInt(id, 10) != rest {
		return 0, false
	}
	return id, true
}

// Event is a room event payload.
type Event interface{ EventType() string }

// RoomCreated opens a room; its stream's first event.
type RoomCreated struct {
	RoomID  int64  `json:"room_id"`
	OwnerID string `json:"owner_id"`
	Title   string `json:"title"`
}

// RoomDeleted closes a room for good.
type RoomDeleted struct {
	RoomID    int64  `json:"room_id"`
	DeletedBy string `json:"deleted_by"`
}

// MessagePosted is a user's question.
type MessagePosted struct {
	MessageID domain.UUID `json:"message_id"`
	ClientID  string      `json:"client_id,omitempty"`
	UserID    string      `json:"user_id"`
	Text      string      `json:"text"`
}

// AnswerStarted opens the answer to a message. Instance names the chatd
// process generating it, so a restarted process knows its own.
type AnswerStarted struct {
	AnswerID   domain.UUID `json:"answer_id"`
	QuestionID domain.UUID `json:"question_id"`
	Model      string      `json:"model"`
	Instance   string      `json:"instance"`
}

// AnswerChunk carries one or more consecutive deltas of an answer's text
// as its generator emitted them (see NewAnswerChunk and Deltas). Seq is the
// sequence number of the first (an answer's deltas count from 0 without
// gaps, so the next chunk starts at Seq + Count) and Delta their text,
// joined. A chunk of one delta — every chunk written before chunks carried
// several — has neither Ends nor OffsetsMS.
type AnswerChunk struct {
	AnswerID domain.UUID `json:"answer_id"`
	Seq      int         `json:"seq"`
	Delta    string      `json:"delta"`
	// Ends holds, for each delta but the last, the byte offset in Delta
	// where it ends.
	Ends []int `json:"ends,omitempty"`
	// OffsetsMS holds, for each delta but the first, how many milliseconds
	// after the first it was emitted, so that a replay keeps the pace.
	OffsetsMS []int64 `json:"offsets_ms,omitempty"`
}

// Source is a document an answer drew on.
type Source struct {
	Document string  `json:"document"`
	Title    string  `json:"title,omitempty"`
	ChunkID  string  `json:"chunk_id"`
	Score    float64 `json:"score"`
	Snippet  string  `json:"snippet"`
}

// AnswerCompleted closes an answer with its full text.
type AnswerCompleted struct {
	AnswerID domain.UUID `json:"answer_id"`
	Text     string      `json:"text"`
	Sources  []Source    `json:"sources"`
	Chunks   int         `json:"chunks"`
}

// RetrievalRecorded records the document retrieval an answer was given,
// before its first chunk: what was asked, which chunks were found, by which
// method and index, for which model, and the hash of the whole prompt the
// generator received. Error is set when retrieval failed or timed out and
// the answer went ahead without documents.
//
// Rewrite, Retrievers and Fused say how the hits were found; events
// recorded before they existed have none.
type RetrievalRecorded struct {
	AnswerID domain.UUID `json:"answer_id"`
	Query    string      `json:"query"`
	// Hits are the passages the generator was given, best first.
	Hits     []RetrievalHit `json:"hits"`
	Embedder string         `json:"embedder"`
	Index    string         `json:"index"`
	Model    string         `json:"model"`
	// PromptHash is the hex SHA-256 of the prompt's canonical JSON
	// (chat.CanonicalPrompt).
	PromptHash string `json:"prompt_hash"`
	Error      string `json:"error,omitempty"`
	// Rewrite is the query rewrite, when a model ran one.
	Rewrite *QueryRewrite `json:"rewrite,omitempty"`
	// Retrievers are the ranked lists that were fused, one per retriever
	// and query text.
	Retrievers []RetrieverRun `json:"retrievers,omitempty"`
	// Fused is the fused order, before it was diversified into Hits; its
	// scores are Reciprocal Rank Fusion sums.
	Fused []RetrievalHit `json:"fused,omitempty"`
}

// RetrievalHit is one chunk a retrieval found.
type RetrievalHit struct {
	ChunkID string  `json:"chunk_id"`
	Source  string  `json:"source"`
	Score   float64 `json:"score"`
}

// QueryRewrite is a language model's rewrite of a question into search
// queries in the corpus languages. Error says why it was skipped (a
// timeout, a failure); the question was then searched as asked.
type QueryRewrite struct {
	Model   string   `json:"model"`
	Queries []string `json:"queries,omitempty"`
	Error   string   `json:"error,omitempty"`
}

// RetrieverRun is one retriever's ranked list: Kind "sparse" (BM25; a
// hit's score is the share of its query's attainable score it reached) or
// "dense" (an embedder; a hit's score is its cosine similarity), the model
// that encoded Query, and its hits, best first: a hit's rank is its
// position plus one.
type RetrieverRun struct {
	Kind  string         `json:"kind"`
	Model string         `json:"model"`
	Query string         `json:"query"`
	Hits  []RetrievalHit `json:"hits"`
}

// Reasons an answer ends without completing.
const (
	ReasonCancelled      = "cancelled"
	ReasonInterrupted    = "interrupted"
	ReasonShutdown       = "shutdown"
	ReasonGeneratorError = "generator_error"
	ReasonTimeout        = "timeout"
	ReasonRoomDeleted    = "room_deleted"
)

// AnswerFailed closes an answer that could not complete.
type AnswerFailed struct {
	AnswerID domain.UUID `json:"answer_id"`
	Reason   string      `json:"reason"`
	// Text is what had streamed before the failure.
	Text string `json:"text"`
}

// AnswerCancelled closes an answer stopped on request.
type AnswerCancelled struct {
	AnswerID domain.UUID `json:"answer_id"`
	Reason   string      `json:"reason"`
	By       string      `json:"by"`
	Text     string      `json:"text"`
}

// SummaryUpdated replaces the room's conversation summary: the oldest
// whole turns (a question and its answer) were folded, with the previous
// summary, into Summary. The turns it covers are those whose answers ended
// at or before CoversThroughVersion; later turns stay verbatim in the
// memory's buffer. Appended at an exact expected version, so one turn is
// summarised once.
type SummaryUpdated struct {
	Summary string `json:"summary"`
	// CoversThroughVersion is the stream version of the last event of the
	// last turn folded in.
	CoversThroughVersion int64 `json:"covers_through_version"`
	// Tokens is the summary's length in the summariser's token count.
	Tokens int `json:"tokens"`
	// Summarizer names what wrote it (e.g. "extractive", "ollama/llama3.2").
	Summarizer string `json:"summarizer"`
}

// EventType implementations.
func (RoomCreated) EventType() string       { return TypeRoomCreated }
func (RoomDeleted) EventType() string       { return TypeRoomDeleted }
func (MessagePosted) EventType() string     { return TypeMessagePosted }
func (AnswerStarted) EventType() string     { return TypeAnswerStarted }
func (AnswerChunk) EventType() string       { return TypeAnswerChunk }
func (AnswerCompleted) EventType() string   { return TypeAnswerCompleted }
func (AnswerFailed) EventType() string      { return TypeAnswerFailed }
func (AnswerCancelled) EventType() string   { return TypeAnswerCancelled }
func (RetrievalRecorded) EventType() string { return TypeRetrievalRecorded }
func (SummaryUpdated) EventType() string    { return TypeSummaryUpdated }
