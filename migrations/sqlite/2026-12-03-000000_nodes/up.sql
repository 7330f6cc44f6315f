-- Kept for one schema on both backends: a SQLite database serves one process (see
-- src/db/lease.rs), so these stay empty.
CREATE TABLE node (
    id BIGINT NOT NULL PRIMARY KEY,
    clustered BOOLEAN NOT NULL,
    started_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE setting (
    name VARCHAR(32) NOT NULL PRIMARY KEY,
    value VARCHAR(64) NOT NULL
);
