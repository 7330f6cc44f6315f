-- Moderation (src/moderation/): what visitors reported and who is banned. Unlike the chat
-- tables these are kept across restarts and `reset`. Ids are chosen by the server (random),
-- so no RETURNING is needed; times are milliseconds since the Unix epoch (UTC), compared as
-- numbers the same way on both backends. Visitor and address keys are the keyed hashes of
-- src/secret.rs, never a token or an address.
CREATE TABLE report (
    id BIGINT PRIMARY KEY NOT NULL,
    created_ms BIGINT NOT NULL,
    -- The process (node id) that took the report.
    node BIGINT NOT NULL,
    -- spam, harassment, sexual, under_age or other.
    reason VARCHAR(16) NOT NULL,
    note TEXT NOT NULL,
    -- The reported visitor's key and its address key (an admin may ban either).
    reported BIGINT NOT NULL,
    reported_address BIGINT NOT NULL,
    reporter BIGINT NOT NULL,
    -- The chat's last messages, as JSON: [{"from":"reporter"|"reported","message":"..."}].
    evidence TEXT NOT NULL,
    dismissed BOOLEAN NOT NULL DEFAULT 0
);
-- Auto-ban counts a visitor's recent reports; the retention sweep deletes by age.
CREATE INDEX report_reported ON report (reported, created_ms);
CREATE INDEX report_created ON report (created_ms);

CREATE TABLE ban (
    id BIGINT PRIMARY KEY NOT NULL,
    -- visitor (a visitor key) or address (an address key: IPv4 address or IPv6 /64).
    kind VARCHAR(16) NOT NULL,
    target BIGINT NOT NULL,
    reason VARCHAR(500) NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    -- An admin's name, or `auto`.
    created_by VARCHAR(64) NOT NULL,
    lifted BOOLEAN NOT NULL DEFAULT 0
);
-- Every process reloads the active bans (lifted = 0, expires_ms in the future) every 2 s.
CREATE INDEX ban_expires ON ban (expires_ms);
