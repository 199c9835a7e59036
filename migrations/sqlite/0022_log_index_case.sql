-- The log's entries by case, kept behind the log instead of in the
-- request's transaction (`access_log_by_case` wrote a different B-tree
-- leaf page for nearly every entry, on the path of every answer). The
-- log writer fills `log_index_case` between its batches, sorted by
-- (case_id, seq), and moves `log_index_progress.upto` in the same
-- transaction: entries 0 .. upto-1 are indexed, later ones not yet. A
-- query by case reads the index below `upto` and the entries from `upto`
-- on (few: the writer catches up every few thousand entries, and when
-- idle), so its answer is complete and says how far the index had
-- caught up. `sluis audit verify` checks the index against the entries.
CREATE TABLE log_index_case (
    case_id TEXT NOT NULL,
    seq     INTEGER NOT NULL,          -- the entry's position in access_log
    PRIMARY KEY (case_id, seq)
) WITHOUT ROWID;
CREATE TRIGGER log_index_case_append_only_u BEFORE UPDATE ON log_index_case
BEGIN SELECT RAISE(ABORT, 'the access log is append-only'); END;
CREATE TRIGGER log_index_case_append_only_d BEFORE DELETE ON log_index_case
BEGIN SELECT RAISE(ABORT, 'the access log is append-only'); END;

-- How far each index behind the log has caught up: entries below `upto`.
CREATE TABLE log_index_progress (
    name TEXT PRIMARY KEY,
    upto INTEGER NOT NULL CHECK (upto >= 0)
) WITHOUT ROWID;

INSERT INTO log_index_case (case_id, seq)
    SELECT case_id, seq FROM access_log WHERE case_id IS NOT NULL ORDER BY case_id, seq;
INSERT INTO log_index_progress (name, upto)
    SELECT 'case', COALESCE(MAX(seq) + 1, 0) FROM access_log;
DROP INDEX access_log_by_case;
