// Package offline provides the chat.Generator Parley uses when no language
// model is configured, and a scripted generator for tests and benchmarks.
//
// The extractive Generator answers only from what the prompt gives it. With
// retrieved passages, it quotes the sentences that share the most words (and,
// for Korean, Chinese and Japanese text, character bigrams) with the question
// and cites them as [1], [2] by passage order. Without passages, it says
// plainly that no documents matched and, when the conversation mentioned
// something relevant, quotes that earlier sentence. Its answers state that no
// language model is configured; it never pretends to be one. Output is
// deterministic: the same prompt always gives the same answer, streamed in
// the same small pieces.
//
// Scripted replays a fixed answer at a fixed rate in tokens per second, and
// can fail after a given number of tokens, so that streaming, back-pressure
// and failure paths can be tested without a model.
//
// Both stream text the way a model does: in pieces of a word or a few
// characters, never splitting a UTF-8 encoded rune, and they stop promptly
// when the context ends.
package offline
