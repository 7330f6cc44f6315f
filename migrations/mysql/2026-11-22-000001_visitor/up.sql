-- Who a connection is (a hash of its visitor token or address), so that a visitor who starts
-- over is not paired straight back with the stranger they just left.
ALTER TABLE chat_user ADD COLUMN visitor BIGINT NOT NULL DEFAULT 0;
