-- The access log becomes a Merkle tree (RFC 6962/9162).
--
-- merkle_nodes holds the hash of every perfect subtree: level L, index i
-- covers log entries [i*2^L, (i+1)*2^L). It is keyed by end_size =
-- (i+1)*2^L, the tree size at which the node completes, so that appending
-- writes and verifying reads it in one order. Level 0 is the leaf hash
-- SHA-256(0x00 || record).
CREATE TABLE merkle_nodes (
    end_size INTEGER NOT NULL,
    level    INTEGER NOT NULL,
    hash     BLOB NOT NULL,
    PRIMARY KEY (end_size, level)
) WITHOUT ROWID;

-- Signed checkpoints (C2SP tlog-checkpoint in a signed note, Ed25519).
CREATE TABLE checkpoints (
    size INTEGER PRIMARY KEY,
    root BLOB NOT NULL,
    at   INTEGER NOT NULL,
    note TEXT NOT NULL
);

-- Keyed hashes of a subject's V-number and BSN, so a subject access report
-- can be asked for by identity without storing the identity in clear.
CREATE TABLE subject_index (
    kind    TEXT NOT NULL CHECK (kind IN ('v_number', 'bsn')),
    digest  TEXT NOT NULL,
    case_id TEXT NOT NULL REFERENCES cases (id),
    PRIMARY KEY (kind, digest, case_id)
) WITHOUT ROWID;

-- The log and its tree are append-only for the node itself; an attacker
-- with file access can still edit them, which `sluis audit verify` catches.
CREATE TRIGGER access_log_append_only_u BEFORE UPDATE ON access_log
BEGIN SELECT RAISE(ABORT, 'the access log is append-only'); END;
CREATE TRIGGER access_log_append_only_d BEFORE DELETE ON access_log
BEGIN SELECT RAISE(ABORT, 'the access log is append-only'); END;
CREATE TRIGGER merkle_nodes_append_only_u BEFORE UPDATE ON merkle_nodes
BEGIN SELECT RAISE(ABORT, 'the log tree is append-only'); END;
CREATE TRIGGER merkle_nodes_append_only_d BEFORE DELETE ON merkle_nodes
BEGIN SELECT RAISE(ABORT, 'the log tree is append-only'); END;
