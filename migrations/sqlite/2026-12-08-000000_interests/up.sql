-- What the visitor waiting in a chat asks of a partner (see src/chat/wants.rs), kept on the
-- chat row so that the matchmaker still reads the queue from `chat` alone: its interests
-- (normalised tags joined by newlines, '' for none), its language ('' for none: en, ru or
-- zh), and when it takes anyone (microseconds since the Unix epoch, as `queued`; the largest
-- BIGINT for never). A row without them asks for nothing.
ALTER TABLE chat ADD COLUMN interests VARCHAR(200) NOT NULL DEFAULT '';
ALTER TABLE chat ADD COLUMN lang VARCHAR(8) NOT NULL DEFAULT '';
ALTER TABLE chat ADD COLUMN fallback_at BIGINT NOT NULL DEFAULT 0;
