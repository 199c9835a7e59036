-- Alerts of emergency ("break-glass") accesses.
-- PostgreSQL version of migrations/sqlite/0009_emergency_alerts.sql; see there.
CREATE TABLE emergency_accesses (
    seq        BIGINT PRIMARY KEY,
    request_id TEXT NOT NULL UNIQUE
);
CREATE TABLE emergency_reviews (
    access_seq BIGINT PRIMARY KEY REFERENCES emergency_accesses (seq),
    review_seq BIGINT NOT NULL UNIQUE
);

CREATE TRIGGER emergency_accesses_append_only BEFORE UPDATE OR DELETE ON emergency_accesses
    FOR EACH ROW EXECUTE FUNCTION sluis_append_only();
CREATE TRIGGER emergency_reviews_append_only BEFORE UPDATE OR DELETE ON emergency_reviews
    FOR EACH ROW EXECUTE FUNCTION sluis_append_only();
