-- Addresses an operator flagged: their chats need a solved proof-of-work challenge until
-- `expires_at` (Unix seconds). `address` is the keyed hash of the address (an IPv4 address,
-- or an IPv6 /64; see src/secret.rs), never the address itself.
CREATE TABLE challenge_flag (
    address BIGINT NOT NULL PRIMARY KEY,
    expires_at BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
