-- Statistics releases ("publish once"): the first answer for a table,
-- breakdown, quarter and scope is kept here, and every later request for it
-- is answered with the same figures, whatever was entered since, so that no
-- two answers about one quarter can be subtracted. All tables of a quarter's
-- population are released together, from one protected set of figures.
-- Never changed, never deleted: the triggers refuse UPDATE and DELETE.
CREATE TABLE statistics_releases (
    table_name  TEXT NOT NULL,    -- the table, e.g. durable_solutions
    quarter     TEXT NOT NULL,    -- e.g. 2025Q3
    breakdown   TEXT NOT NULL,    -- node | by_municipality | own
    scope       TEXT NOT NULL,    -- for own: the municipality's participant id; else ''
    computed_at INTEGER NOT NULL, -- ms since the epoch: the release's as_of
    body        TEXT NOT NULL,    -- the protected table (JSON); holds no count below the threshold
    sha256      TEXT NOT NULL,    -- hex SHA-256 of body, as the access record names it
    PRIMARY KEY (table_name, quarter, breakdown, scope)
);
CREATE TRIGGER statistics_releases_append_only_u BEFORE UPDATE ON statistics_releases
BEGIN SELECT RAISE(ABORT, 'statistics releases are append-only'); END;
CREATE TRIGGER statistics_releases_append_only_d BEFORE DELETE ON statistics_releases
BEGIN SELECT RAISE(ABORT, 'statistics releases are append-only'); END;
