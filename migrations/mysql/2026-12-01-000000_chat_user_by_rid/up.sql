-- chat_user.id was BIGINT here and INTEGER on SQLite, and nothing used it: the connection id
-- (rid) is unique already and becomes the key. The backends' schemas are compared by
-- tests/api/schema.rs.
ALTER TABLE chat_user DROP COLUMN id, ADD PRIMARY KEY (rid), DROP INDEX rid;
