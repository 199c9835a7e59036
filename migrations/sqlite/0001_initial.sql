-- sluis schema, version 1. Identity and case data are only ever stored
-- sealed (AES-256-GCM, key outside the database). Times are Unix ms, UTC.

CREATE TABLE cases (
    id          TEXT PRIMARY KEY,          -- UUID, the owner's handle
    owner       TEXT NOT NULL,             -- participant id
    subject_ref BLOB NOT NULL UNIQUE,      -- random 16 bytes; pseudonyms derive from it
    version     INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX cases_by_owner ON cases (owner, id);

CREATE TABLE case_data (
    case_id  TEXT NOT NULL REFERENCES cases (id),
    category INTEGER NOT NULL,             -- model::Category::code
    sealed   BLOB NOT NULL,                -- vault::Keys::seal, bound to (case, category)
    PRIMARY KEY (case_id, category)
) WITHOUT ROWID;

CREATE TABLE consents (
    id           TEXT PRIMARY KEY,
    case_id      TEXT NOT NULL REFERENCES cases (id),
    recorded_by  TEXT NOT NULL,
    categories   TEXT NOT NULL,            -- comma-separated category names
    purposes     TEXT NOT NULL,            -- comma-separated purposes
    valid_from   INTEGER NOT NULL,
    valid_until  INTEGER,
    evidence_ref TEXT NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE INDEX consents_by_case ON consents (case_id);

CREATE TABLE consent_recipients (
    consent_id TEXT NOT NULL REFERENCES consents (id),
    kind       TEXT NOT NULL CHECK (kind IN ('participant', 'role')),
    value      TEXT NOT NULL,
    PRIMARY KEY (consent_id, kind, value)
) WITHOUT ROWID;
CREATE INDEX consent_recipients_by_value ON consent_recipients (kind, value);

-- Append-only: withdrawal is an event; nothing is updated or deleted.
CREATE TABLE consent_events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    consent_id TEXT NOT NULL REFERENCES consents (id),
    kind       TEXT NOT NULL CHECK (kind IN ('given', 'withdrawn')),
    at         INTEGER NOT NULL,
    by         TEXT NOT NULL,
    note       TEXT NOT NULL
);
CREATE INDEX consent_events_by_consent ON consent_events (consent_id, seq);
CREATE TRIGGER consent_events_append_only_u BEFORE UPDATE ON consent_events
BEGIN SELECT RAISE(ABORT, 'consent events are append-only'); END;
CREATE TRIGGER consent_events_append_only_d BEFORE DELETE ON consent_events
BEGIN SELECT RAISE(ABORT, 'consent events are append-only'); END;

-- Pseudonyms issued to a recipient, so it can come back with one.
CREATE TABLE pseudonyms (
    recipient TEXT NOT NULL,
    pseudonym TEXT NOT NULL,
    case_id   TEXT NOT NULL REFERENCES cases (id),
    PRIMARY KEY (recipient, pseudonym)
) WITHOUT ROWID;

-- The access log: one row per request, allowed or not. `record` is the
-- canonical versioned encoding (audit::AccessRecord); the other columns are
-- copies for querying.
CREATE TABLE access_log (
    seq        INTEGER PRIMARY KEY,        -- 0-based position in the log
    request_id TEXT NOT NULL,
    at         INTEGER NOT NULL,
    caller     TEXT NOT NULL,
    role       TEXT NOT NULL,
    method     TEXT NOT NULL,
    case_id    TEXT,
    subject    TEXT,                       -- pseudonym in the audit domain
    purpose    TEXT,
    decision   TEXT NOT NULL,
    record     BLOB NOT NULL
);
CREATE INDEX access_log_by_request ON access_log (request_id);
CREATE INDEX access_log_by_case ON access_log (case_id, seq);
CREATE INDEX access_log_by_at ON access_log (at);
