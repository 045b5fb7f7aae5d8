// Package projections runs read models fed from the event log, and
// rebuilds them.
//
// A Projection applies batches of recorded events to its own storage and
// keeps its checkpoint (the position of the last event applied) with them,
// atomically, so a crash never leaves the two apart; re-applying events it
// has already folded changes nothing. A Runner drives one Projection: it
// subscribes to the room streams after the projection's checkpoint, hands
// it the store's batches, retries failures that may pass with backoff, and
// stops on an event the projection can never apply (an *EventError) or on
// a checkpoint that belongs to another log (a *WrongLogError: see
// LogBinder). Its Status and WaitFor serve metrics, operators' tools and
// callers that must read their own writes. CatchUp applies the log up to
// a position and no further.
//
// Rebuild runs the rebuild protocol (rebuild.go): a shadow copy filled from
// position zero with the same Apply, caught up, swapped in while the live
// copy is held still, the old copy kept until dropped, or a dry run that
// compares instead; one error set for every read model. A read model
// takes part by implementing Rebuildable over its storage;
// projectiontest is the suite every such read model passes.
//
// A Feed is the one subscription to the log a process holds: Runners and
// the WebSocket hub subscribe to it instead of the store, and it fans each
// event out to all of them in memory, so the store is read once however
// many readers the process runs.
//
// The package imports the domain only; the projections themselves live
// with their technology (adapters/postgres.ChatLog, adapters/redis.Memory)
// and cmd wires them.
package projections
