-- Subjects an access-log entry names besides its own `subject` column:
-- the cases a listing returned, the entries an officer read (access record
-- version 2, `subjects`). Written in the transaction that appends the
-- entry, so that a subject access report finds every entry naming the
-- subject. A copy for queries, like the log's other columns: `sluis audit
-- verify` checks it against the signed records.
CREATE TABLE access_log_subjects (
    seq     INTEGER NOT NULL,          -- the entry's position in access_log
    subject TEXT NOT NULL,             -- pseudonym in the audit domain
    PRIMARY KEY (seq, subject)
) WITHOUT ROWID;
CREATE INDEX access_log_subjects_by_subject ON access_log_subjects (subject, seq);

CREATE TRIGGER access_log_subjects_append_only_u BEFORE UPDATE ON access_log_subjects
BEGIN SELECT RAISE(ABORT, 'the access log is append-only'); END;
CREATE TRIGGER access_log_subjects_append_only_d BEFORE DELETE ON access_log_subjects
BEGIN SELECT RAISE(ABORT, 'the access log is append-only'); END;
