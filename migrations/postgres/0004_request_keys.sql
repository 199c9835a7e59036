-- Idempotency keys (AIP-155). PostgreSQL version of
-- migrations/sqlite/0004_request_keys.sql; see there.
CREATE TABLE request_keys (
    caller      TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    method      TEXT NOT NULL,
    digest      TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    record_id   TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (caller, request_id)
);
CREATE INDEX request_keys_by_age ON request_keys (created_at);
