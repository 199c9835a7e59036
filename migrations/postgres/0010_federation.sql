-- Federation (ARCHITECTURE.md, "Federation"): where a case went, and which
-- node a pseudonym belongs to. Neither table holds case data or identities.

-- A case this node referred to another node: the pointer it keeps. The
-- case's own rows (data, consents, pseudonyms, subject index) are deleted in
-- the transaction that writes this row; the access log keeps naming the id.
CREATE TABLE referred_cases (
    case_id    TEXT PRIMARY KEY,
    node       TEXT NOT NULL,              -- the federation node id it went to
    request_id TEXT NOT NULL,              -- the referral's record, on both nodes
    at         BIGINT NOT NULL
);

-- Pseudonyms a participant received through this node whose case another
-- node holds (issued there, or referred there): where to forward a request
-- that names one. Never a case id, never an identity.
CREATE TABLE federation_pseudonyms (
    recipient TEXT NOT NULL,
    pseudonym TEXT NOT NULL,
    node      TEXT NOT NULL,
    PRIMARY KEY (recipient, pseudonym)
);

-- Consent events stay append-only, except those of a case that has left
-- this node: they go with it, after its pointer is written.
CREATE FUNCTION sluis_consent_event_leaves() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND EXISTS (
        SELECT 1 FROM consents c JOIN referred_cases r ON r.case_id = c.case_id
        WHERE c.id = OLD.consent_id
    ) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END $$;
DROP TRIGGER consent_events_append_only ON consent_events;
CREATE TRIGGER consent_events_append_only BEFORE UPDATE OR DELETE ON consent_events
    FOR EACH ROW EXECUTE FUNCTION sluis_consent_event_leaves();
