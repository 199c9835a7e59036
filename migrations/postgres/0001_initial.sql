-- sluis schema, version 1 (PostgreSQL). Identity and case data are only
-- ever stored sealed (AES-256-GCM, key outside the database). Times are Unix
-- ms, UTC. Mirrors migrations/sqlite/0001_initial.sql.

CREATE TABLE cases (
    id          TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    subject_ref BYTEA NOT NULL UNIQUE,
    version     BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX cases_by_owner ON cases (owner, id);

CREATE TABLE case_data (
    case_id  TEXT NOT NULL REFERENCES cases (id),
    category BIGINT NOT NULL,
    sealed   BYTEA NOT NULL,
    PRIMARY KEY (case_id, category)
);

CREATE TABLE consents (
    id           TEXT PRIMARY KEY,
    case_id      TEXT NOT NULL REFERENCES cases (id),
    recorded_by  TEXT NOT NULL,
    categories   TEXT NOT NULL,
    purposes     TEXT NOT NULL,
    valid_from   BIGINT NOT NULL,
    valid_until  BIGINT,
    evidence_ref TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX consents_by_case ON consents (case_id);

CREATE TABLE consent_recipients (
    consent_id TEXT NOT NULL REFERENCES consents (id),
    kind       TEXT NOT NULL CHECK (kind IN ('participant', 'role')),
    value      TEXT NOT NULL,
    PRIMARY KEY (consent_id, kind, value)
);
CREATE INDEX consent_recipients_by_value ON consent_recipients (kind, value);

CREATE TABLE consent_events (
    seq        BIGSERIAL PRIMARY KEY,
    consent_id TEXT NOT NULL REFERENCES consents (id),
    kind       TEXT NOT NULL CHECK (kind IN ('given', 'withdrawn')),
    at         BIGINT NOT NULL,
    by         TEXT NOT NULL,
    note       TEXT NOT NULL
);
CREATE INDEX consent_events_by_consent ON consent_events (consent_id, seq);

CREATE FUNCTION sluis_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END;
$$;
CREATE TRIGGER consent_events_append_only BEFORE UPDATE OR DELETE ON consent_events
    FOR EACH ROW EXECUTE FUNCTION sluis_append_only();

CREATE TABLE pseudonyms (
    recipient TEXT NOT NULL,
    pseudonym TEXT NOT NULL,
    case_id   TEXT NOT NULL REFERENCES cases (id),
    PRIMARY KEY (recipient, pseudonym)
);

CREATE TABLE access_log (
    seq        BIGINT PRIMARY KEY,
    request_id TEXT NOT NULL,
    at         BIGINT NOT NULL,
    caller     TEXT NOT NULL,
    role       TEXT NOT NULL,
    method     TEXT NOT NULL,
    case_id    TEXT,
    subject    TEXT,
    purpose    TEXT,
    decision   TEXT NOT NULL,
    record     BYTEA NOT NULL
);
CREATE INDEX access_log_by_request ON access_log (request_id);
CREATE INDEX access_log_by_case ON access_log (case_id, seq);
CREATE INDEX access_log_by_at ON access_log (at);
