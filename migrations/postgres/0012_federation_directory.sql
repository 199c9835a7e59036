-- The highest federation directory serial this node has run with, so that
-- a directory never goes back, across restarts as across reloads (an old
-- signed directory put back in place would bring back old pins).
CREATE TABLE federation_directory (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    serial BIGINT NOT NULL
);
