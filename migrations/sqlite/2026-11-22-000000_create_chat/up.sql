-- A chat is waiting (is_completed = 0, one chat_user) or paired (is_completed = 1, two).
-- chat.id is chosen by the server (the creating connection's id), so no RETURNING is needed.
CREATE TABLE chat (
    id BIGINT PRIMARY KEY NOT NULL,
    is_completed BOOLEAN NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX chat_waiting ON chat (is_completed, id);

CREATE TABLE chat_user (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    rid BIGINT NOT NULL UNIQUE,
    chat_id BIGINT NOT NULL REFERENCES chat (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX chat_user_chat ON chat_user (chat_id);
