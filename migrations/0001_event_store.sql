-- The event store: one append-only log, a stream per room.
--
-- Global order is (txid, seq): txid is the writing transaction's id, seq a
-- sequence value that only orders the events of one transaction (so the
-- sequence may cache values per session). Readers of the global log only return rows whose txid is
-- below pg_snapshot_xmin(pg_current_snapshot()), the oldest transaction
-- still running: every transaction below it has finished, so no row can
-- ever appear behind a reader's checkpoint (no "skipped global position").

CREATE TABLE events (
    seq         bigint      GENERATED ALWAYS AS IDENTITY (CACHE 100),
    txid        bigint      NOT NULL,
    stream      text        NOT NULL,
    version     bigint      NOT NULL,
    id          uuid        NOT NULL,
    type        text        NOT NULL,
    data        json        NOT NULL,
    metadata    json,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream, version)
);

-- Appends are one statement: read the stream's last version, insert the
-- new events after it if the expectation holds. Two writers racing for the
-- same version meet on the primary key; the loser fails once the winner
-- commits. So whoever writes version v+1 has seen version v committed, and
-- its transaction id, assigned at its insert, is higher: a stream's
-- versions follow the global order.
CREATE UNIQUE INDEX events_id ON events (id);
CREATE UNIQUE INDEX events_global_order ON events (txid, seq);
