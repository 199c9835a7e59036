-- Statistics releases ("publish once"). PostgreSQL version of
-- migrations/sqlite/0005_statistics_releases.sql; see there.
CREATE TABLE statistics_releases (
    table_name  TEXT NOT NULL,
    quarter     TEXT NOT NULL,
    breakdown   TEXT NOT NULL,
    scope       TEXT NOT NULL,
    computed_at BIGINT NOT NULL,
    body        TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    PRIMARY KEY (table_name, quarter, breakdown, scope)
);
CREATE TRIGGER statistics_releases_append_only BEFORE UPDATE OR DELETE ON statistics_releases
    FOR EACH ROW EXECUTE FUNCTION sluis_append_only();
