-- Idempotency keys (AIP-155): the `request_id` a client gave a write
-- (RegisterCase, UpdateCase, GrantConsent, WithdrawConsent), stored in the
-- write's own transaction, so that a retry with the same key is answered
-- from what the first call did instead of writing again. Kept for 7 days
-- (gateway::idempotency::RETENTION); older rows are ignored and deleted.
CREATE TABLE request_keys (
    caller      TEXT NOT NULL,             -- participant id: keys are per caller
    request_id  TEXT NOT NULL,             -- the client's key (a UUID)
    method      TEXT NOT NULL,             -- the write it named
    digest      TEXT NOT NULL,             -- keyed hash of the request, never the request
    resource_id TEXT NOT NULL,             -- the case or consent written
    seq         INTEGER NOT NULL,          -- the case version, or the consent's event count, after it
    record_id   TEXT NOT NULL,             -- the first call's access record (x-request-id)
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (caller, request_id)
) WITHOUT ROWID;
CREATE INDEX request_keys_by_age ON request_keys (created_at);
