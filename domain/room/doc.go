// Package room is the chat room aggregate: its event types and payloads,
// State folded from a room's stream (Evolve), the decisions on commands
// (pure functions from state and command to new events), and History, the
// conversation as a client sees it, folded from the same events.
//
// A room is the stream "room-<id>". RoomCreated (version 0) records the
// owner; only the owner may post. One answer streams at a time: a message
// posted while an answer is open is refused as busy.
package room
