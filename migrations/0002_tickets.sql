-- WebSocket tickets: short-lived, single-use credentials that
-- POST /api/rooms/{id}/ticket issues so browsers need not put a JWT in a
-- URL. Only the SHA-256 of a ticket is stored; the ticket itself is shown
-- once, to the client that asked for it.
--
-- token_expires_at is when the JWT the ticket was issued under expires (NULL
-- when it had no expiry): the connection a ticket opens lives no longer than
-- that token would have.

CREATE TABLE ws_tickets (
    hash             bytea       PRIMARY KEY,
    user_id          text        NOT NULL,
    roles            text[]      NOT NULL DEFAULT '{}',
    room_id          bigint      NOT NULL,
    expires_at       timestamptz NOT NULL,
    token_expires_at timestamptz
);

-- Sweep deletes expired tickets by this index.
CREATE INDEX ws_tickets_expires_at ON ws_tickets (expires_at);
