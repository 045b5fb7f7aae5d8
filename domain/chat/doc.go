// Package chat holds Parley's conversation use cases: posting a message
// and answering it (the answer pipeline), with the small ports they need,
// such as the Generator that turns a prompt into a stream of text.
package chat
