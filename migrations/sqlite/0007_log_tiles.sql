-- The log's Merkle tree stored as C2SP tlog-tiles (https://c2sp.org/tlog-tiles)
-- instead of one row per tree node (merkle_nodes, dropped once the tiles
-- are rebuilt from the entries and their root is proven equal to the
-- latest signed checkpoint: `Store::open` with migrations).
--
-- log_tiles: hash tile (level L, index N) holds the hashes of tree level
-- 8L, nodes N*256 .. N*256+W-1, 32 bytes each (W = length(hashes) / 32).
-- Level-0 tiles (the leaf hashes) are written once, when full; a tile of a
-- higher level grows by one hash every 256^L entries, and may only grow.
CREATE TABLE log_tiles (
    level  INTEGER NOT NULL,
    idx    INTEGER NOT NULL,
    hashes BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;

-- The growing edge of level 0: the leaf hashes of the level-0 tile that is
-- not yet full, one row per append (`start`: the log index of its first
-- hash). An append writes only its own hashes; the append that fills the
-- tile writes it to log_tiles and removes its rows here.
CREATE TABLE log_edge (
    start  INTEGER PRIMARY KEY,
    hashes BLOB NOT NULL
);

CREATE TRIGGER log_tiles_grow_only BEFORE UPDATE ON log_tiles
WHEN NEW.level <> OLD.level OR NEW.idx <> OLD.idx
  OR length(NEW.hashes) <= length(OLD.hashes)
  OR substr(NEW.hashes, 1, length(OLD.hashes)) <> OLD.hashes
BEGIN SELECT RAISE(ABORT, 'the log tree is append-only'); END;
CREATE TRIGGER log_tiles_append_only_d BEFORE DELETE ON log_tiles
BEGIN SELECT RAISE(ABORT, 'the log tree is append-only'); END;
CREATE TRIGGER log_edge_append_only_u BEFORE UPDATE ON log_edge
BEGIN SELECT RAISE(ABORT, 'the log tree is append-only'); END;
-- An edge row goes only once the full tile holding it is stored.
CREATE TRIGGER log_edge_moved_only BEFORE DELETE ON log_edge
WHEN NOT EXISTS (SELECT 1 FROM log_tiles WHERE level = 0 AND idx = OLD.start / 256)
BEGIN SELECT RAISE(ABORT, 'the log tree is append-only'); END;
