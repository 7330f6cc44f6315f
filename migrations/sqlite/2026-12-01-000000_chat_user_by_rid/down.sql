CREATE TABLE chat_user_by_id (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    rid BIGINT NOT NULL UNIQUE,
    chat_id BIGINT NOT NULL REFERENCES chat (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    visitor BIGINT NOT NULL DEFAULT 0
);
INSERT INTO chat_user_by_id (rid, chat_id, created_at, visitor)
    SELECT rid, chat_id, created_at, visitor FROM chat_user;
DROP TABLE chat_user;
ALTER TABLE chat_user_by_id RENAME TO chat_user;
CREATE INDEX chat_user_chat ON chat_user (chat_id);
