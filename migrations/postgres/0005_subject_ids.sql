-- PostgreSQL version of migrations/sqlite/0005_subject_ids.sql; see there.
ALTER TABLE cases ADD COLUMN subject_id BYTEA;
