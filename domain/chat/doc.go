// Package chat holds Parley's conversation use cases: posting a message
// and answering it (the answer pipeline), with the small ports they need,
// such as the Generator that turns a prompt into a stream of text and the
// Retriever that grounds an answer in document passages. Each retrieval is
// recorded beside its answer (room.RetrievalRecorded, with the hash of the
// exact prompt) before the answer's first chunk.
package chat
