-- The access log becomes a Merkle tree (RFC 6962/9162). PostgreSQL version
-- of migrations/sqlite/0002_merkle_log.sql; see there for the layout.
CREATE TABLE merkle_nodes (
    end_size BIGINT NOT NULL,
    level    BIGINT NOT NULL,
    hash     BYTEA NOT NULL,
    PRIMARY KEY (end_size, level)
);

CREATE TABLE checkpoints (
    size BIGINT PRIMARY KEY,
    root BYTEA NOT NULL,
    at   BIGINT NOT NULL,
    note TEXT NOT NULL
);

CREATE TABLE subject_index (
    kind    TEXT NOT NULL CHECK (kind IN ('v_number', 'bsn')),
    digest  TEXT NOT NULL,
    case_id TEXT NOT NULL REFERENCES cases (id),
    PRIMARY KEY (kind, digest, case_id)
);

CREATE TRIGGER access_log_append_only BEFORE UPDATE OR DELETE ON access_log
    FOR EACH ROW EXECUTE FUNCTION sluis_append_only();
CREATE TRIGGER merkle_nodes_append_only BEFORE UPDATE OR DELETE ON merkle_nodes
    FOR EACH ROW EXECUTE FUNCTION sluis_append_only();
