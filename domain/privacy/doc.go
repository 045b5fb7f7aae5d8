// Package privacy keeps conversation text out of storage in the clear and
// erases it by crypto-shredding.
//
// Every room has its own random 256-bit data key. The key is stored only
// wrapped (AES-256-GCM) under a key-encryption key (KEK) from the
// configuration, in a KeyStore (the Postgres table room_keys, whichever
// event store holds the log); unwrapped keys live in a bounded cache.
//
// Store seals the fields of room events that carry what a person wrote or
// was told (room.SecretFields) into one versioned envelope per event,
// {"enc":1,"kid":...,"n":...,"ct":...}, on their way into the event store,
// and opens them on their way out; event types, ids, versions, user ids,
// timestamps and document ids stay in clear. The audit chain, which wraps
// the store below Store, hashes the sealed bytes.
//
// Erasing a room destroys its key (Keyring.Destroy) first; what was sealed
// under it, in the log, the read models, WAL and backups, can no longer be
// read. Events of an erased room open to their clear fields only.
package privacy
