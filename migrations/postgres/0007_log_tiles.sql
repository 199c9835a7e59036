-- The log's Merkle tree stored as C2SP tlog-tiles; see the SQLite migration
-- of the same number for the layout.
CREATE TABLE log_tiles (
    level  BIGINT NOT NULL,
    idx    BIGINT NOT NULL,
    hashes BYTEA NOT NULL,
    PRIMARY KEY (level, idx)
);

CREATE TABLE log_edge (
    start  BIGINT PRIMARY KEY,
    hashes BYTEA NOT NULL
);

-- A tile may only grow (its old hashes kept), never move or go.
CREATE FUNCTION sluis_tile_grows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.level = OLD.level AND NEW.idx = OLD.idx
       AND length(NEW.hashes) > length(OLD.hashes)
       AND substr(NEW.hashes, 1, length(OLD.hashes)) = OLD.hashes THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'the log tree is append-only';
END $$;
CREATE TRIGGER log_tiles_grow_only BEFORE UPDATE OR DELETE ON log_tiles
    FOR EACH ROW EXECUTE FUNCTION sluis_tile_grows();

-- An edge row goes only once the full tile holding it is stored.
CREATE FUNCTION sluis_edge_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND EXISTS
       (SELECT 1 FROM log_tiles WHERE level = 0 AND idx = OLD.start / 256) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'the log tree is append-only';
END $$;
CREATE TRIGGER log_edge_append_only BEFORE UPDATE OR DELETE ON log_edge
    FOR EACH ROW EXECUTE FUNCTION sluis_edge_moved();
