-- chat_user.id was INTEGER here and BIGINT on MySQL (so `schema.rs`, generated from SQLite,
-- typed it as a 32-bit Integer), and nothing used it: the connection id (rid) is unique
-- already and becomes the key. The backends' schemas are compared by tests/api/schema.rs.
CREATE TABLE chat_user_by_rid (
    rid BIGINT PRIMARY KEY NOT NULL,
    chat_id BIGINT NOT NULL REFERENCES chat (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    visitor BIGINT NOT NULL DEFAULT 0
);
INSERT INTO chat_user_by_rid (rid, chat_id, created_at, visitor)
    SELECT rid, chat_id, created_at, visitor FROM chat_user;
DROP TABLE chat_user;
ALTER TABLE chat_user_by_rid RENAME TO chat_user;
CREATE INDEX chat_user_chat ON chat_user (chat_id);
