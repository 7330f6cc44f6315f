DROP TABLE chat_user;
DROP TABLE chat;
