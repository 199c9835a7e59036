-- The keyed subject lookups of a case this node referred to another node
-- (ARCHITECTURE.md, "Federation"): the same keyed hashes of the V-number
-- and BSN `subject_index` held for it, so a subject access report asked
-- here by V-number or BSN finds the case that left and names the node that
-- holds it now, rather than saying no case is registered. No identity in
-- clear, as in `subject_index`; the node is the case's pointer's
-- (`referred_cases`).
CREATE TABLE referred_subjects (
    kind    TEXT NOT NULL CHECK (kind IN ('v_number', 'bsn')),
    digest  TEXT NOT NULL,
    case_id TEXT NOT NULL,
    PRIMARY KEY (kind, digest, case_id)
);
