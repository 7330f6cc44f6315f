ALTER TABLE chat_user DROP COLUMN visitor;
