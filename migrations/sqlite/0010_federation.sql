-- Federation (ARCHITECTURE.md, "Federation"): where a case went, and which
-- node a pseudonym belongs to. Neither table holds case data or identities.

-- A case this node referred to another node: the pointer it keeps. The
-- case's own rows (data, consents, pseudonyms, subject index) are deleted in
-- the transaction that writes this row; the access log keeps naming the id.
CREATE TABLE referred_cases (
    case_id    TEXT PRIMARY KEY,
    node       TEXT NOT NULL,              -- the federation node id it went to
    request_id TEXT NOT NULL,              -- the referral's record, on both nodes
    at         INTEGER NOT NULL
) WITHOUT ROWID;

-- Pseudonyms a participant received through this node whose case another
-- node holds (issued there, or referred there): where to forward a request
-- that names one. Never a case id, never an identity.
CREATE TABLE federation_pseudonyms (
    recipient TEXT NOT NULL,
    pseudonym TEXT NOT NULL,
    node      TEXT NOT NULL,
    PRIMARY KEY (recipient, pseudonym)
) WITHOUT ROWID;

-- Consent events stay append-only, except those of a case that has left
-- this node: they go with it, after its pointer is written.
DROP TRIGGER consent_events_append_only_d;
CREATE TRIGGER consent_events_append_only_d BEFORE DELETE ON consent_events
WHEN NOT EXISTS (
    SELECT 1 FROM consents c JOIN referred_cases r ON r.case_id = c.case_id
    WHERE c.id = OLD.consent_id
)
BEGIN SELECT RAISE(ABORT, 'consent events are append-only'); END;
