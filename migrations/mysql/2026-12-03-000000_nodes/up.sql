-- The server processes on this database. Each holds the named lock
-- pairchat.node.<database>.<id> while it runs (it dies with its connection), so a row whose lock
-- is free is a process that has stopped. `clustered`: it runs with --redis-url.
CREATE TABLE node (
    id BIGINT NOT NULL PRIMARY KEY,
    clustered BOOLEAN NOT NULL,
    started_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
-- Settings every process shares: `cluster`, the random id that names this database's keys in Redis.
CREATE TABLE setting (
    name VARCHAR(32) NOT NULL PRIMARY KEY,
    value VARCHAR(64) NOT NULL
);
