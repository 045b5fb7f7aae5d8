// Package chat holds Parley's conversation use cases: posting a message
// and answering it (the answer pipeline), with the small ports they need,
// such as the Generator that turns a prompt into a stream of text and the
// Retriever that grounds an answer in document passages. Each retrieval is
// recorded beside its answer (room.RetrievalRecorded, with the hash of the
// exact prompt) before the answer's first chunk.
//
// Answers always end: a pipeline retries its terminal event through a
// store outage (bounded by AnswerTimeout plus EndGrace), and a sweeper
// (Service.Run) fails what is left open, so no room stays busy without a
// restart. The rooms' folded states are cached in a bounded LRU (rooms.go).
package chat
