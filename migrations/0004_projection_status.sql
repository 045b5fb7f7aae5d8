-- Why a projection stopped, for `chatctl projections status` in another
-- process: the position of the event its runner can never apply (NULL
-- while it is not stopped on one) and when its last error was recorded.
-- last_error (0003) keeps the message; a successful batch clears all three.

ALTER TABLE projection_checkpoints
    ADD COLUMN stopped_commit  bigint,
    ADD COLUMN stopped_prepare bigint,
    ADD COLUMN last_error_at   timestamptz;
