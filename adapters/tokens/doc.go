// Package tokens counts tokens offline with OpenAI's byte-pair encodings
// (github.com/tiktoken-go/tokenizer), for the conversation memory's token
// budget (memory.TokenCounter). The vocabularies are compiled into the
// binary: nothing is downloaded or read from disk at run time.
package tokens
