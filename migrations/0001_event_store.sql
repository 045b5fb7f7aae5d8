-- The event store: one append-only log, a stream per room.
--
-- Global order is (txid, seq): txid is the writing transaction's id, seq a
-- sequence value. Readers of the global log only return rows whose txid is
-- below pg_snapshot_xmin(pg_current_snapshot()), the oldest transaction
-- still running: every transaction below it has finished, so no row can
-- ever appear behind a reader's checkpoint (no "skipped global position").

CREATE TABLE streams (
    name    text   PRIMARY KEY,
    version bigint NOT NULL CHECK (version >= 0)
);

CREATE TABLE events (
    seq         bigint      GENERATED ALWAYS AS IDENTITY,
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

CREATE UNIQUE INDEX events_id ON events (id);
CREATE UNIQUE INDEX events_global_order ON events (txid, seq);

-- parley_append writes one append atomically and returns a status:
--   0 written, 1 wrong expected version, 2 idempotent retry (nothing
--   written, the original result returned), 3 partial or reordered retry.
-- p_expected: -1 any, -2 no stream, -3 stream exists, >= 0 exact version.
--
-- The stream's advisory lock is taken before anything assigns this
-- transaction an id, so of two appends to one stream the later one always
-- has the higher txid: a stream's versions follow the global order.
CREATE FUNCTION parley_append(
    p_stream   text,
    p_expected bigint,
    p_ids      uuid[],
    p_types    text[],
    p_data     text[],
    p_meta     text[]
) RETURNS TABLE (status int, actual bigint, last_version bigint, commit_pos bigint, prepare_pos bigint)
LANGUAGE plpgsql AS $$
DECLARE
    n         int := cardinality(p_ids);
    cur       bigint;
    found_n   int;
    first_v   bigint;
    in_order  int;
    tx        bigint;
    last_seq  bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(1886548069, hashtext(p_stream));

    SELECT s.version INTO cur FROM streams s WHERE s.name = p_stream;
    IF NOT FOUND THEN
        cur := -1;
    ELSE
        SELECT count(*), min(e.version) INTO found_n, first_v
          FROM events e WHERE e.id = ANY (p_ids) AND e.stream = p_stream;
        IF found_n > 0 THEN
            IF found_n < n THEN
                RETURN QUERY SELECT 3, cur, NULL::bigint, NULL::bigint, NULL::bigint;
                RETURN;
            END IF;
            SELECT count(*) INTO in_order
              FROM unnest(p_ids) WITH ORDINALITY AS u(id, ord)
              JOIN events e ON e.stream = p_stream AND e.version = first_v + u.ord - 1 AND e.id = u.id;
            IF in_order < n OR NOT (p_expected = -1
                    OR (p_expected = -2 AND first_v = 0)
                    OR (p_expected = -3 AND first_v > 0)
                    OR (p_expected >= 0 AND first_v = p_expected + 1)) THEN
                RETURN QUERY SELECT 3, cur, NULL::bigint, NULL::bigint, NULL::bigint;
                RETURN;
            END IF;
            RETURN QUERY SELECT 2, cur, e.version, e.txid, e.seq
              FROM events e WHERE e.stream = p_stream AND e.version = first_v + n - 1;
            RETURN;
        END IF;
    END IF;

    IF NOT (p_expected = -1
            OR (p_expected = -2 AND cur = -1)
            OR (p_expected = -3 AND cur >= 0)
            OR p_expected = cur) THEN
        RETURN QUERY SELECT 1, cur, NULL::bigint, NULL::bigint, NULL::bigint;
        RETURN;
    END IF;

    tx := pg_current_xact_id()::text::bigint;
    WITH ins AS (
        INSERT INTO events (txid, stream, version, id, type, data, metadata)
        SELECT tx, p_stream, cur + u.ord, u.id, u.typ, u.dat::json, u.met::json
          FROM unnest(p_ids, p_types, p_data, p_meta) WITH ORDINALITY AS u(id, typ, dat, met, ord)
         ORDER BY u.ord
        RETURNING seq
    )
    SELECT max(seq) INTO last_seq FROM ins;

    INSERT INTO streams AS s (name, version) VALUES (p_stream, cur + n)
        ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version;

    RETURN QUERY SELECT 0, cur, cur + n, tx, last_seq;
END;
$$;
