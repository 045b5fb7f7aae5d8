package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/parleychat/parley/domain/room"
)

// serverFrame is any server frame of docs/protocol.md §4.1; each type uses
// some of the fields. Version is nil in frames that carry none.
type serverFrame struct {
	Type     string        `json:"type"`
	Version  *int64        `json:"version"`
	Hash     string        `json:"hash"`     // of the event at Version, when the log chains its events
	Messages []historyItem `json:"messages"` // history
	Role     string        `json:"role"`     // message
	ID       string        `json:"id"`       // message
	ClientID string        `json:"client_id"`
	AnswerID string        `json:"answer_id"` // chunk, answer, answer_failed, answer_cancelled
	Message  string        `json:"message"`   // message, chunk (the delta), answer (the full text), error
	Sources  []room.Source `json:"sources"`   // answer
	Reason   string        `json:"reason"`    // answer_failed, answer_cancelled
	Code     string        `json:"code"`      // error
}

// historyItem is one message of a history frame.
type historyItem struct {
	ID      string        `json:"id"`
	Role    string        `json:"role"`
	Message string        `json:"message"`
	Status  string        `json:"status"`
	Sources []room.Source `json:"sources"`
	Version int64         `json:"version"`
}

// transcript prints the conversation to stdout as it arrives:
//
//	you: What changed?
//	bot: Version 2 adds tickets.
//	  [1] CHANGELOG.md (changelog-0003, score 0.82): 2.0: tickets for …
//
// An answer's chunks are written as they come, on one line that the
// answer's final frame ends. In raw mode it prints each frame as received
// instead, one per line.
type transcript struct {
	w   io.Writer
	raw bool
	// open is the id of the answer whose line is open (chunks written, no
	// newline yet), or ""; text is what that line shows of it.
	open string
	text strings.Builder
}

// show prints f, whose encoding is data.
func (t *transcript) show(f serverFrame, data []byte) {
	if t.raw {
		fmt.Fprintf(t.w, "%s\n", data)
		return
	}
	switch f.Type {
	case "history":
		t.endLine()
		for i, m := range f.Messages {
			t.historyItem(m, i == len(f.Messages)-1)
		}
	case "message":
		t.endLine()
		fmt.Fprintf(t.w, "you: %s\n", f.Message)
	case "chunk":
		if t.open != f.AnswerID {
			t.openAnswer(f.AnswerID, "")
		}
		io.WriteString(t.w, f.Message)
		t.text.WriteString(f.Message)
	case "answer":
		switch {
		case t.open != f.AnswerID:
			t.endLine()
			fmt.Fprintf(t.w, "bot: %s\n", orNoText(f.Message))
		case t.text.String() == f.Message:
			io.WriteString(t.w, "\n")
		default:
			// Resumed mid-answer, or the deltas disagree with the final
			// text, which is authoritative: show it whole.
			fmt.Fprintf(t.w, "\nbot (whole answer): %s\n", orNoText(f.Message))
		}
		t.open = ""
		t.sources(f.Sources)
	case "answer_failed", "answer_cancelled":
		marker := endMarker(f.Type, f.Reason)
		if t.open == f.AnswerID {
			fmt.Fprintf(t.w, " %s\n", marker)
			t.open = ""
		} else {
			t.endLine()
			fmt.Fprintf(t.w, "bot: %s\n", marker)
		}
	}
}

// historyItem prints one history message; a streaming answer, which can
// only be the last, leaves its line open for the chunks that follow.
func (t *transcript) historyItem(m historyItem, last bool) {
	if m.Role == room.RoleUser {
		fmt.Fprintf(t.w, "you: %s\n", m.Message)
		return
	}
	switch m.Status {
	case room.StatusStreaming:
		if last {
			t.openAnswer(m.ID, m.Message)
			return
		}
		fmt.Fprintf(t.w, "bot: %s [streaming]\n", m.Message)
	case room.StatusFailed:
		fmt.Fprintf(t.w, "bot: %s [failed]\n", m.Message)
	case room.StatusCancelled:
		fmt.Fprintf(t.w, "bot: %s [cancelled]\n", m.Message)
	default:
		fmt.Fprintf(t.w, "bot: %s\n", orNoText(m.Message))
		t.sources(m.Sources)
	}
}

// openAnswer starts the line of answer id with the text it has so far.
func (t *transcript) openAnswer(id, text string) {
	t.endLine()
	fmt.Fprintf(t.w, "bot: %s", text)
	t.open = id
	t.text.Reset()
	t.text.WriteString(text)
}

// endLine ends an open answer line, leaving the answer as it is; later
// chunks of it start a new line.
func (t *transcript) endLine() {
	if t.open != "" {
		io.WriteString(t.w, "\n")
		t.open = ""
	}
}

func (t *transcript) sources(src []room.Source) {
	for i, s := range src {
		fmt.Fprintf(t.w, "  [%d] %s (%s, score %.2f): %s\n", i+1, s.Document, s.ChunkID, s.Score, clip(s.Snippet, 120))
	}
}

// endMarker is how an answer that ended without completing is marked.
func endMarker(typ, reason string) string {
	word := "failed"
	if typ == "answer_cancelled" {
		word = "cancelled"
	}
	if reason == "" || reason == word {
		return "[" + word + "]"
	}
	return "[" + word + ": " + reason + "]"
}

func orNoText(s string) string {
	if s == "" {
		return "(no text)"
	}
	return s
}

// clip collapses white space and cuts s to at most n runes.
func clip(s string, n int) string {
	s = oneLine(s)
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
