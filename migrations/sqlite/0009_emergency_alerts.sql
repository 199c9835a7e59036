-- Alerts of emergency ("break-glass") accesses: a read that released a
-- category under an emergency rule of the policy (@break_glass) opens an
-- alert, which stays open until the privacy officer closes it with a
-- verdict (AuditService.CloseEmergencyAlert). Both rows are written in the
-- transaction that appends the entry they come from (the access; the
-- review), so an alert exists exactly when its access is in the log. The
-- verdict, the note and the justification are in the signed records; these
-- tables only find them. Append-only, like the log.
CREATE TABLE emergency_accesses (
    seq        INTEGER PRIMARY KEY,        -- the access's position in access_log
    request_id TEXT NOT NULL UNIQUE        -- its access record id
);
CREATE TABLE emergency_reviews (
    access_seq INTEGER PRIMARY KEY REFERENCES emergency_accesses (seq),
    review_seq INTEGER NOT NULL UNIQUE     -- the review's position in access_log
);

CREATE TRIGGER emergency_accesses_append_only_u BEFORE UPDATE ON emergency_accesses
BEGIN SELECT RAISE(ABORT, 'the access log is append-only'); END;
CREATE TRIGGER emergency_accesses_append_only_d BEFORE DELETE ON emergency_accesses
BEGIN SELECT RAISE(ABORT, 'the access log is append-only'); END;
CREATE TRIGGER emergency_reviews_append_only_u BEFORE UPDATE ON emergency_reviews
BEGIN SELECT RAISE(ABORT, 'the access log is append-only'); END;
CREATE TRIGGER emergency_reviews_append_only_d BEFORE DELETE ON emergency_reviews
BEGIN SELECT RAISE(ABORT, 'the access log is append-only'); END;
