-- Which log a projection's checkpoint belongs to (projections.LogBinder):
-- the event store's name for its log, such as "postgres:<system
-- identifier>/<database oid>" or "kurrentdb:<uuid>". A position means
-- something only in its own log, so a runner refuses a checkpoint of
-- another one. NULL until the projection is first run (rows written
-- before this column existed are bound to the first log they run on).

ALTER TABLE projection_checkpoints ADD COLUMN log_id text;
