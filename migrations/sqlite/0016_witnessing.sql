-- Witnessing between federation nodes (ARCHITECTURE.md, "Witnessing").

-- The cosignatures peers made on this node's checkpoints (C2SP
-- tlog-cosignature): one per witness and checkpoint size, the newest kept.
-- Each was verified under the witness key the directory lists before it
-- was stored; `line` is the signature line to append to the checkpoint.
CREATE TABLE checkpoint_cosignatures (
    size INTEGER NOT NULL,
    witness TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    line TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (size, witness)
);

-- The newest checkpoint of each peer this node checked consistent and
-- cosigned: the next one must extend it.
CREATE TABLE witnessed_checkpoints (
    node TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    note TEXT NOT NULL,
    at INTEGER NOT NULL
);

-- A peer whose log forked or went back: the two signed checkpoints that
-- conflict, kept as evidence. Never updated or deleted by the node.
CREATE TABLE witness_alarms (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    node TEXT NOT NULL,
    kind TEXT NOT NULL,
    seen_note TEXT NOT NULL,
    offered_note TEXT NOT NULL,
    detail TEXT NOT NULL,
    at INTEGER NOT NULL,
    UNIQUE (node, seen_note, offered_note)
);
