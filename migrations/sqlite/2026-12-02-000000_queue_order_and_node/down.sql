DROP INDEX chat_user_node;
DROP INDEX chat_waiting;
CREATE INDEX chat_waiting ON chat (is_completed, id);
ALTER TABLE chat_user DROP COLUMN node;
ALTER TABLE chat DROP COLUMN visitor;
ALTER TABLE chat DROP COLUMN queued;
