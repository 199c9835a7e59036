-- Subjects an access-log entry names besides its own `subject` column.
-- PostgreSQL version of migrations/sqlite/0003_log_subjects.sql; see there.
CREATE TABLE access_log_subjects (
    seq     BIGINT NOT NULL,
    subject TEXT NOT NULL,
    PRIMARY KEY (seq, subject)
);
CREATE INDEX access_log_subjects_by_subject ON access_log_subjects (subject, seq);

CREATE TRIGGER access_log_subjects_append_only BEFORE UPDATE OR DELETE ON access_log_subjects
    FOR EACH ROW EXECUTE FUNCTION sluis_append_only();
