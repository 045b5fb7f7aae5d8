// Package audit makes the event log tamper evident: a hash chain over each
// stream, written by ChainingStore and checked by VerifyStream.
//
// # The chain
//
// Every event a ChainingStore writes carries two fields at the end of its
// metadata (see domain.WithChainFields):
//
//	"prev_hash": the hash of the stream's previous event; 64 zeros (Genesis)
//	             for version 0
//	"hash":      SHA-256 over prev_hash and the event, as below
//
// The hash of the event at version v of a stream is
//
//	hash_v = SHA-256( prev_v ‖ F(Tag) ‖ F(stream) ‖ F(uint64be(v)) ‖ F(id) ‖ F(type) ‖ F(data) ‖ F(meta) )
//
// where prev_v is the 32 bytes of hash_{v-1} (32 zero bytes for v = 0),
// F(x) is the length of x as a big-endian uint64 followed by x, Tag is
// "parley-audit-chain/1", id is the event ID's 16 bytes, type is the event
// type's UTF-8 bytes, data is the event's data exactly as stored (Postgres
// keeps it in a json column, which preserves the text byte for byte, and
// KurrentDB stores bytes, so no canonicalisation is needed or done), and
// meta is the metadata without the chain fields, exactly as
// domain.SplitChainFields returns it: the writer's metadata with white
// space around it trimmed and an empty or null one written as {}. Every
// metadata field is therefore covered: correlation_id, causation_id,
// user_id and occurred_at (the writer's clock, never the store's: the
// chain store adds no time of its own, so a retried append computes the
// same metadata) and any other field a writer adds. What the store
// assigns (RecordedAt, Position) is not covered; the stream name and the
// version are, so moving or renumbering an event breaks the chain.
//
// Events written before the chain store was put in front of the store
// carry no chain fields. They are hashed the same way, with their metadata
// as stored, so the first chained event links to the whole unchained past
// and protects it from then on. VerifyStream counts them (Result.Unchained);
// an unchained event after a chained one is a break.
//
// # What verification catches, and what it needs help with
//
// A changed event (data, type, ID, metadata, chain fields), a deleted event
// (a version gap) and reordered events each break the chain at the first
// version affected. Deleting events from the end of a stream, or rewriting
// a stream's whole chain consistently (recomputing every hash), leaves a
// chain that verifies on its own: compare with chain heads exported
// earlier (chatctl audit head, kept elsewhere and signed) to catch those.
package audit
