// Package langchain adapts language models reached through
// github.com/tmc/langchaingo to Parley's ports: a chat.Generator that
// streams answers from Ollama or any OpenAI-compatible server, an
// embedder for the retrieval index, and a memory.Summarizer that asks the
// same model to extend a conversation's running summary.
//
// BuildMessages turns a chat.Prompt into the message list sent to the model.
// Retrieved passages go into the system message inside a <documents> fence,
// introduced as untrusted data that must not be obeyed, with any tag in
// them that could close the fence escaped. Passages lose their Markdown
// links and images, HTML tags and URLs before the model sees them, and the
// model is told never to put external URLs, links or images in its answer,
// so that an injected instruction cannot make a chat client fetch an
// attacker's URL.
//
// The Generator bounds each answer with a timeout and retries transient
// failures (connection refused or reset, HTTP 429 and 5xx) with doubling
// backoff, but only before the first delta has been emitted: after that a
// retry would splice two different generations into one answer. An
// http.RoundTripper records the real status and transport errors of each
// attempt, because langchaingo's clients reduce them to strings (or, for an
// Ollama error status with an empty body, to success).
package langchain
