-- The ChatLog read model: rooms and their conversations as room.History
-- folds them, written by the chatlog projection (adapters/postgres
-- chatlog.go) together with its checkpoint, in one transaction per batch.
--
-- Every row carries the stream version of the last event folded into it,
-- so re-applying events already folded changes nothing.

CREATE TABLE rooms (
    id           bigint      PRIMARY KEY,
    owner_id     text        NOT NULL,
    title        text        NOT NULL,
    created_at   timestamptz NOT NULL,
    deleted_at   timestamptz,
    -- the version of the room stream's last event folded in
    last_version bigint      NOT NULL
);

CREATE INDEX rooms_owner_created ON rooms (owner_id, created_at DESC);

CREATE TABLE chat_logs (
    room_id    bigint      NOT NULL,
    id         uuid        NOT NULL,
    role       text        NOT NULL,
    text       text        NOT NULL,
    status     text        NOT NULL,
    -- NULL when the message has no sources (room.Message.Sources nil);
    -- an empty array stays an empty array
    sources    jsonb,
    client_id  text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    -- the version of the last event folded into this row
    version    bigint      NOT NULL,
    -- the order within the room: the version of the event that created the row
    seq        bigint      NOT NULL,
    PRIMARY KEY (room_id, id)
);

CREATE INDEX chat_logs_room_seq ON chat_logs (room_id, seq);

-- One row per projection: the position of the last event it applied,
-- written in the same transaction as the projection's own rows, and the
-- last error that stopped or delayed it (NULL once it applies again).
CREATE TABLE projection_checkpoints (
    name        text        PRIMARY KEY,
    commit_pos  bigint      NOT NULL,
    prepare_pos bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    last_error  text
);
