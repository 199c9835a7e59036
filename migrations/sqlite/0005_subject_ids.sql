-- The data subject's V-number or BSN per case, sealed by the node's data
-- key (vault::Keys::seal, bound to the case), so that each access record
-- can carry it sealed again to the privacy officer's key (Logboek
-- Dataverwerkingen `dpl.core.data_subject_id`, access record version 3).
-- NULL for a case that names neither, or was registered before this
-- version and not updated with its identity since.
ALTER TABLE cases ADD COLUMN subject_id BLOB;
