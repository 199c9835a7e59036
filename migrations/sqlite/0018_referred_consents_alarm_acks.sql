-- Federation follow-ups (ARCHITECTURE.md, "Federation", "Witnessing").

-- The consents of a case this node referred to another node: a request
-- naming one by its id is told where the case went (CASE_REFERRED), as one
-- naming the case is. The node is the case's pointer's (`referred_cases`);
-- no terms, recipients or identities are kept.
CREATE TABLE referred_consents (
    consent_id TEXT PRIMARY KEY,
    case_id    TEXT NOT NULL
) WITHOUT ROWID;

-- An operator's acknowledgement of a witness alarm: who, when, under which
-- request (its access record), and a note. The alarm's evidence stays as it
-- was; a peer with every alarm acknowledged is witnessed again.
CREATE TABLE witness_alarm_acks (
    alarm_id   INTEGER PRIMARY KEY REFERENCES witness_alarms (id),
    by_participant TEXT NOT NULL,
    note       TEXT NOT NULL,
    request_id TEXT NOT NULL,
    at         INTEGER NOT NULL
);
