-- The log's entries by case, kept behind the log.
-- PostgreSQL version of migrations/sqlite/0022_log_index_case.sql; see there.
CREATE TABLE log_index_case (
    case_id TEXT NOT NULL,
    seq     BIGINT NOT NULL,
    PRIMARY KEY (case_id, seq)
);
CREATE TRIGGER log_index_case_append_only BEFORE UPDATE OR DELETE ON log_index_case
    FOR EACH ROW EXECUTE FUNCTION sluis_append_only();

CREATE TABLE log_index_progress (
    name TEXT PRIMARY KEY,
    upto BIGINT NOT NULL CHECK (upto >= 0)
);

INSERT INTO log_index_case (case_id, seq)
    SELECT case_id, seq FROM access_log WHERE case_id IS NOT NULL ORDER BY case_id, seq;
INSERT INTO log_index_progress (name, upto)
    SELECT 'case', COALESCE(MAX(seq) + 1, 0) FROM access_log;
DROP INDEX access_log_by_case;
