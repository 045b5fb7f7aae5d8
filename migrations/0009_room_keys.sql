-- Rooms' data keys (domain/privacy), wrapped under a key-encryption key
-- from the configuration; never stored unwrapped. Whichever event store
-- holds the log, the keys live here. Destroying a key (erasure) sets
-- wrapped to NULL and destroyed_at, and keeps the row as a tombstone so no
-- new key is ever made for the room. Old row versions stay in dead tuples,
-- WAL and backups until vacuumed and expired: keep no backup of this table
-- beyond the erasure deadline.

CREATE TABLE room_keys (
    room_id      bigint PRIMARY KEY,
    kid          text NOT NULL,
    kek_id       text,
    wrapped      bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    destroyed_at timestamptz,
    CHECK ((wrapped IS NULL) = (destroyed_at IS NOT NULL))
);

CREATE INDEX room_keys_kek ON room_keys (kek_id) WHERE wrapped IS NOT NULL;
