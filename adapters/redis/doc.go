// Package redis keeps the conversation memory's read model in Redis
// (github.com/redis/go-redis/v9): per room and user, the latest summary
// and the turns after it, as memory.Conversation folds them from the room
// streams. Memory is a projections.Projection fed by a projections.Runner
// and the chat.MemoryReader that prompts read from.
//
// Every write carries the stream version it applied and is made by one Lua
// script, with the checkpoint, so that a replayed event changes nothing;
// see Memory.Apply. Keys live under a configurable prefix, so tests and
// rebuilds can use their own. A room whose keys vanished (a FLUSHALL, a
// Redis restarted without persistence) is folded again from its stream
// (MemoryConfig.Log, rooms.go) instead of stopping the projection.
//
// redistest starts private servers for tests that pause, flush or kill
// one.
package redis
