-- chat.queued orders the waiting queue (microseconds since the epoch, set by the matchmaker that
-- opens the chat): the connection id alone would put one process's visitors before another's.
-- chat.visitor is the visitor of the connection that opened the chat (the one waiting in it,
-- whose id is the chat's), so that the matchmaker reads the queue from chat alone: the waiting
-- scan (is_completed = 0 ORDER BY queued, id) reads chat_waiting in order, and
-- `FOR UPDATE SKIP LOCKED ... LIMIT n` locks only the n rows it takes.
-- chat_user.node is the server process holding the connection, so that a process's rows can be
-- found (delivered to, swept after, counted) without decoding ids.
ALTER TABLE chat ADD COLUMN queued BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN visitor BIGINT NOT NULL DEFAULT 0,
    DROP INDEX chat_waiting, ADD INDEX chat_waiting (is_completed, queued, id);
ALTER TABLE chat_user ADD COLUMN node BIGINT NOT NULL DEFAULT 0, ADD INDEX chat_user_node (node);
