-- Rooms with an answer still streaming, for chatd's start-up recovery
-- (ChatLog.OpenAnswers): a partial index, so it stays as small as the
-- number of open answers however long the conversations grow.
CREATE INDEX chat_logs_streaming ON chat_logs (room_id) WHERE status = 'streaming';
