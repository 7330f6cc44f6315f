-- What the visitor waiting in a chat asks of a partner (see src/chat/wants.rs), kept on the
-- chat row so that the matchmaker still reads the queue from `chat` alone: its interests
-- (normalised tags joined by newlines, '' for none; five tags of 32 characters fit), its
-- language ('' for none: en, ru or zh), and when it takes anyone (microseconds since the Unix
-- epoch, as `queued`; the largest BIGINT for never). A row without them asks for nothing.
-- utf8mb4 whatever the database's default: tags are in any script.
ALTER TABLE chat
    ADD COLUMN interests VARCHAR(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL DEFAULT '',
    ADD COLUMN lang VARCHAR(8) CHARACTER SET utf8mb4 NOT NULL DEFAULT '',
    ADD COLUMN fallback_at BIGINT NOT NULL DEFAULT 0;
