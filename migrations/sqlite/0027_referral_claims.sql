-- A referral's claim on its case, from before the case is read until its
-- pointer is stored or the referral fails: the second of two ReferCase
-- calls of one case is refused, also when each reaches another process on
-- one database. A claim whose process died ends at `expires_at_ms` (unix
-- ms), when another referral may take it over. `request_id` is the
-- referral's, so a referral releases only its own claim.
CREATE TABLE referral_claims (
    case_id       TEXT PRIMARY KEY,
    request_id    TEXT NOT NULL,
    claimed_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL
);
