-- The admin view (src/admin/): accounts, what they did, and failed sign-ins. Kept across
-- restarts and `reset`. Ids are random (chosen by the server); times are milliseconds since
-- the Unix epoch, compared as numbers the same way on both backends.
CREATE TABLE admin_account (
    -- Random, and new when a removed name is added again: a session names the account by it.
    id BIGINT PRIMARY KEY NOT NULL,
    name VARCHAR(64) NOT NULL UNIQUE,
    -- argon2id, PHC string format (salt and parameters inside).
    password_hash VARCHAR(255) NOT NULL,
    -- Raised at sign-out: sessions signed in under an older value are refused.
    session_epoch BIGINT NOT NULL DEFAULT 0,
    created_ms BIGINT NOT NULL
);

-- Every admin action: sign-in, sign-out, dismiss, ban, lift (and accounts added or removed
-- from the command line, by `cli`).
CREATE TABLE admin_audit (
    id BIGINT PRIMARY KEY NOT NULL,
    at_ms BIGINT NOT NULL,
    admin VARCHAR(64) NOT NULL,
    action VARCHAR(32) NOT NULL,
    detail VARCHAR(500) NOT NULL
);
CREATE INDEX admin_audit_at ON admin_audit (at_ms);

-- Failed sign-ins, by the keyed hash of the address or of the account name tried, so that
-- every process sees the same count; rows older than the window are deleted.
CREATE TABLE admin_login_failure (
    id BIGINT PRIMARY KEY NOT NULL,
    subject BIGINT NOT NULL,
    at_ms BIGINT NOT NULL
);
CREATE INDEX admin_login_failure_subject ON admin_login_failure (subject, at_ms);
CREATE INDEX admin_login_failure_at ON admin_login_failure (at_ms);
