-- A chat is waiting (is_completed = 0, one chat_user) or paired (is_completed = 1, two).
-- chat.id is chosen by the server (the creating connection's id), so no RETURNING is needed.
-- The (is_completed, id) index lets `FOR UPDATE SKIP LOCKED` lock only the row it picks.
CREATE TABLE chat (
    id BIGINT PRIMARY KEY NOT NULL,
    is_completed BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    INDEX chat_waiting (is_completed, id)
) ENGINE = InnoDB;

CREATE TABLE chat_user (
    id BIGINT PRIMARY KEY AUTO_INCREMENT NOT NULL,
    rid BIGINT NOT NULL UNIQUE,
    chat_id BIGINT NOT NULL,
    created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    INDEX chat_user_chat (chat_id),
    CONSTRAINT chat_user_chat_fk FOREIGN KEY (chat_id) REFERENCES chat (id) ON DELETE CASCADE
) ENGINE = InnoDB;
