package room

import (
	"fmt"
	"time"

	"github.com/parleychat/parley/domain"
)

// The chunk policy. Answer chunks carry an answer's streamed text; they
// are most of a room's events and the ones a reader waits on, so they are
// treated apart, and everything that does so asks IsChunk or ChunkTypes:
//
//   - they may be committed asynchronously (chatd's PARLEY_CHUNK_COMMIT=async,
//     the Postgres store's AsyncTypes): a crash of the database can lose the
//     last of them, and recovery then fails their answer as interrupted;
//   - a chunk's ID is its answer's and its first sequence number's, and one
//     pipeline writes it, so an append of chunks that succeeds stored
//     exactly what was sent: the audit chain caches their hashes
//     (TrustTypes) and the WebSocket hub hands them to this process's
//     sockets straight from the append, before the log subscription;
//   - the ChatLog read model does not fold them: it writes an answer's
//     text once, from its terminal event, and readers take the text of an
//     answer still streaming from the stream.

// ChunkTypes returns the event types that carry streamed answer text.
func ChunkTypes() []string { return []string{TypeAnswerChunk} }

// IsChunk reports whether events of type t carry streamed answer text.
func IsChunk(t string) bool { return t == TypeAnswerChunk }

// Delta is one piece of an answer's text as its generator emitted it.
type Delta struct {
	Text string
	// At is when it was emitted, relative to the first delta of its
	// AnswerChunk (zero for that one).
	At time.Duration
}

// NewAnswerChunk returns the AnswerChunk carrying deltas (at least one)
// from sequence number seq, emitted at the given times (one per delta),
// which it keeps as offsets from the first, in milliseconds.
func NewAnswerChunk(answer domain.UUID, seq int, deltas []string, emitted []time.Time) AnswerChunk {
	c := AnswerChunk{AnswerID: answer, Seq: seq}
	if len(deltas) == 1 {
		c.Delta = deltas[0]
		return c
	}
	n := 0
	for _, d := range deltas {
		n += len(d)
	}
	text := make([]byte, 0, n)
	c.Ends = make([]int, 0, len(deltas)-1)
	c.OffsetsMS = make([]int64, 0, len(deltas)-1)
	for i, d := range deltas {
		text = append(text, d...)
		if i == len(deltas)-1 {
			break
		}
		c.Ends = append(c.Ends, len(text))
		c.OffsetsMS = append(c.OffsetsMS, max(emitted[i+1].Sub(emitted[0]).Milliseconds(), 0))
	}
	c.Delta = string(text)
	return c
}

// Count is how many deltas the event carries.
func (c AnswerChunk) Count() int { return len(c.Ends) + 1 }

// Deltas returns the event's deltas in order; the first has sequence
// number Seq.
func (c AnswerChunk) Deltas() []Delta {
	out := make([]Delta, 0, c.Count())
	start := 0
	for i, end := range c.Ends {
		var at time.Duration
		if i > 0 {
			at = time.Duration(c.OffsetsMS[i-1]) * time.Millisecond
		}
		out = append(out, Delta{Text: c.Delta[start:end], At: at})
		start = end
	}
	var at time.Duration
	if n := len(c.OffsetsMS); n > 0 {
		at = time.Duration(c.OffsetsMS[n-1]) * time.Millisecond
	}
	return append(out, Delta{Text: c.Delta[start:], At: at})
}

// Validate checks that Ends cut Delta into non-empty pieces and that
// OffsetsMS has one non-decreasing, non-negative offset per later delta.
func (c AnswerChunk) Validate() error {
	if len(c.OffsetsMS) != len(c.Ends) {
		return fmt.Errorf("answer chunk %d: %d ends but %d offsets", c.Seq, len(c.Ends), len(c.OffsetsMS))
	}
	if c.Seq < 0 {
		return fmt.Errorf("answer chunk: negative sequence number %d", c.Seq)
	}
	prev := 0
	for i, end := range c.Ends {
		if end <= prev || end >= len(c.Delta) {
			return fmt.Errorf("answer chunk %d: end %d of delta %d is outside the text of %d bytes or not after the one before", c.Seq, end, i, len(c.Delta))
		}
		prev = end
	}
	var last int64
	for _, off := range c.OffsetsMS {
		if off < last {
			return fmt.Errorf("answer chunk %d: emit offsets %v are not ascending from 0", c.Seq, c.OffsetsMS)
		}
		last = off
	}
	return nil
}
