-- Per-case keys (envelope encryption, gateway::vault): each case's data and
-- subject id are sealed under a key of its own, stored here wrapped under
-- the node's data key (the key-encryption key). `key_version` is the data
-- key version that wraps it: the data-key rotation re-wraps cases whose
-- version is older than the newest, so what is left to do after a crash
-- is in the database (`key_version < newest`). NULL `case_key` on a case
-- not erased: a case from before this version, whose values are sealed
-- under data key version 1 directly; the node moves them under a case key
-- of their own when it starts.
--
-- Crypto-erasure (retention, GDPR art. 5(1)(e), 17): `erased_at` is when
-- the whole case was erased; its `case_key`, `subject_id` and `case_data`
-- rows are gone, so nothing of it can be opened again. The row itself
-- (id, owner, the random `subject_ref`) stays: the access log and the
-- subject index refer to it, and a read of it is answered "erased".
ALTER TABLE cases ADD COLUMN case_key BLOB;
ALTER TABLE cases ADD COLUMN key_version INTEGER;
ALTER TABLE cases ADD COLUMN erased_at INTEGER;
CREATE INDEX cases_by_key_version ON cases (key_version, id);
-- Retention counts from the last update: the erasure step asks for cases
-- not changed since a cut-off.
CREATE INDEX cases_by_update ON cases (updated_at, id) WHERE erased_at IS NULL;
