-- PostgreSQL version of migrations/sqlite/0011_case_keys.sql; see there.
ALTER TABLE cases ADD COLUMN case_key BYTEA;
ALTER TABLE cases ADD COLUMN key_version BIGINT;
ALTER TABLE cases ADD COLUMN erased_at BIGINT;
CREATE INDEX cases_by_key_version ON cases (key_version, id);
CREATE INDEX cases_by_update ON cases (updated_at, id) WHERE erased_at IS NULL;
