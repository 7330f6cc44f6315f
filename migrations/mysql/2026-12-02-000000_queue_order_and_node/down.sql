ALTER TABLE chat_user DROP INDEX chat_user_node, DROP COLUMN node;
ALTER TABLE chat DROP INDEX chat_waiting, ADD INDEX chat_waiting (is_completed, id), DROP COLUMN visitor, DROP COLUMN queued;
