package chat

import "context"

// Roles of prompt messages.
const (
	RoleSystem    = "system"
	RoleUser      = "user"
	RoleAssistant = "assistant"
)

// Turn is one message of the conversation shown to the generator.
type Turn struct {
	Role    string // RoleUser or RoleAssistant
	Content string
}

// Passage is a retrieved document excerpt given to the generator as
// untrusted context.
type Passage struct {
	Document string  // the source document's name or path
	Title    string  // the source document's title, if known
	ChunkID  string  // the chunk's identifier in the index
	Score    float64 // similarity, higher is closer
	Text     string
}

// Prompt is everything a generator is given for one answer.
type Prompt struct {
	System   string    // system instructions
	Summary  string    // the summary of older turns, if any
	History  []Turn    // recent turns, oldest first
	Context  []Passage // retrieved passages, best first
	Question string    // the user's question
}

// Generator produces an answer as a stream of text deltas.
type Generator interface {
	// Generate calls emit with each delta, in order, and returns when the
	// answer is complete (nil), the context ends (its error), or it fails.
	// An error from emit stops generation and is returned.
	Generate(ctx context.Context, p Prompt, emit func(delta string) error) error
	// Name identifies the model, for the answer's record (e.g. "ollama/llama3.2").
	Name() string
}
