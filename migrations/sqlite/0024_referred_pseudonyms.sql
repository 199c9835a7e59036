-- The pseudonyms issued for a case this node referred to another node, with
-- the case's id (ARCHITECTURE.md, "Federation"): a request by one of them
-- here is answered as one by the case's id is (`CASE_REFERRED` to a caller
-- the policy lets read it, the refusal otherwise), and recorded naming the
-- case, so the subject's report lists it. Only pseudonyms this node issued
-- for a case it held; `federation_pseudonyms` (where to forward one issued
-- elsewhere) still holds no case id.
CREATE TABLE referred_pseudonyms (
    recipient TEXT NOT NULL,
    pseudonym TEXT NOT NULL,
    case_id   TEXT NOT NULL,
    PRIMARY KEY (recipient, pseudonym)
) WITHOUT ROWID;
