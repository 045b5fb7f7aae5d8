// Package memory is a room's summary-buffer conversation memory, after
// LangChain's ConversationSummaryBufferMemory: the most recent turns stay
// verbatim in a buffer, and once an answer completes, while the buffer's
// tokens exceed a limit, its oldest whole turns (a question and its
// answer) are folded with the previous summary into a new summary.
//
// The memory is event sourced like the rest of a room: a summary is a
// room.SummaryUpdated event, appended to the room's stream at the exact
// version its author read, so two processes never summarise the same turn
// twice. Conversation folds a room's events into its summary and buffer
// (the Redis read model and the Worker share the fold); Plan decides which
// turns to fold; Worker appends the summaries; Extractive is a
// deterministic summariser that needs no model. Token counts come through
// the TokenCounter port and summaries through the Summarizer port.
package memory
