//! The statements both backends run unchanged, written once.
//!
//! Parameters are `$1`, `$2`, …: PostgreSQL's own form. SQLite reads `$1`
//! as a named parameter and numbers named parameters in the order they
//! first appear, so in a statement that introduces `$1, $2, …` in that
//! order, SQLite's positions are PostgreSQL's numbers and both drivers bind
//! by position. Every statement here introduces them in order; a test in
//! `sqlite` prepares each one and checks. Statements one dialect cannot
//! run (bulk inserts, the packed scan, the digest) live in that backend.
//!
//! Column lists match the mappers in `rows`.

/// A case's columns as `rows::case_meta` reads them.
macro_rules! case_columns {
    ($p:literal) => {
        concat!(
            $p,
            ".id, ",
            $p,
            ".owner, ",
            $p,
            ".subject_ref, ",
            $p,
            ".version, ",
            $p,
            ".updated_at, ",
            $p,
            ".subject_id, ",
            $p,
            ".case_key, ",
            $p,
            ".erased_at"
        )
    };
}

/// An access-log row's columns as `rows::log_row` reads them.
macro_rules! log_columns {
    () => {
        "seq, request_id, at, caller, role, method, case_id, subject, purpose, decision, record"
    };
}

/// A consent joined with its recipients and events, as `rows::ConsentFold`
/// folds them.
macro_rules! consents_where {
    ($cond:literal) => {
        concat!(
            "SELECT c.id, c.case_id, c.recorded_by, c.categories, c.purposes, c.valid_from,
                    c.valid_until, c.evidence_ref, c.created_at, r.kind, r.value,
                    e.seq, e.kind, e.at, e.by, e.note
             FROM consents c
             LEFT JOIN consent_recipients r ON r.consent_id = c.id
             LEFT JOIN consent_events e ON e.consent_id = c.id
             WHERE ",
            $cond,
            " ORDER BY c.created_at, c.id, r.kind, r.value, e.seq"
        )
    };
}

pub(super) const INSERT_CASE: &str =
    "INSERT INTO cases (id, owner, subject_ref, version, created_at, updated_at, subject_id,
                        case_key, key_version)
     VALUES ($1, $2, $3, 1, $4, $4, $5, $6, $7)";
pub(super) const SET_SUBJECT_ID: &str = "UPDATE cases SET subject_id = $1 WHERE id = $2";
pub(super) const INSERT_CASE_DATA: &str =
    "INSERT INTO case_data (case_id, category, sealed) VALUES ($1, $2, $3)";
pub(super) const UPSERT_CASE_DATA: &str =
    "INSERT INTO case_data (case_id, category, sealed) VALUES ($1, $2, $3)
     ON CONFLICT (case_id, category) DO UPDATE SET sealed = excluded.sealed";
pub(super) const DELETE_CASE_DATA: &str =
    "DELETE FROM case_data WHERE case_id = $1 AND category = $2";
pub(super) const DELETE_ALL_CASE_DATA: &str = "DELETE FROM case_data WHERE case_id = $1";
/// A change made only if the case is still at version $3 and not erased;
/// the version grows by $1 (0 or 1).
pub(super) const GUARD_CASE: &str = "UPDATE cases SET version = version + $1
     WHERE id = $2 AND version = $3 AND erased_at IS NULL RETURNING version";
pub(super) const SET_CASE_KEY: &str =
    "UPDATE cases SET case_key = $1, key_version = $2 WHERE id = $3";
/// Crypto-erasure: the case key, the subject id and (with the data rows,
/// deleted apart) everything that could open or name the subject go.
pub(super) const ERASE_CASE: &str = "UPDATE cases
     SET case_key = NULL, key_version = NULL, subject_id = NULL, erased_at = $1 WHERE id = $2";
/// A case key re-wrapped, if it is still wrapped under version $4.
pub(super) const REWRAP_CASE_KEY: &str = "UPDATE cases SET case_key = $1, key_version = $2
     WHERE id = $3 AND key_version = $4 AND erased_at IS NULL";
/// Case keys wrapped under a version below $1, oldest version first.
pub(super) const CASE_KEYS_BELOW: &str = "SELECT id, case_key, key_version FROM cases
     WHERE key_version < $1 AND case_key IS NOT NULL ORDER BY key_version, id LIMIT $2";
/// How many case keys each data key version wraps.
pub(super) const KEY_VERSION_COUNTS: &str =
    "SELECT key_version, COUNT(*) FROM cases WHERE case_key IS NOT NULL GROUP BY key_version";
/// How many rotations of the pseudonym secret the log records: the newest
/// version is one more. The first condition is the partial index's
/// (migration 0021), so that both backends answer from it.
pub(super) const PSEUDONYM_ROTATIONS: &str = "SELECT COUNT(*) FROM access_log
     WHERE method LIKE 'node.%' AND method = 'node.rotate_pseudonym'";
pub(super) const LEGACY_COUNT: &str =
    "SELECT COUNT(*) FROM cases WHERE case_key IS NULL AND erased_at IS NULL";
/// Cases from before per-case keys (sealed under data key version 1).
pub(super) const LEGACY_CASES: &str = "SELECT id FROM cases
     WHERE case_key IS NULL AND erased_at IS NULL AND id > $1 ORDER BY id LIMIT $2";
/// Cases not erased and not changed since $1, by id after $2, at most $3.
pub(super) const CASES_UNCHANGED_SINCE: &str = "SELECT id FROM cases
     WHERE erased_at IS NULL AND updated_at < $1 AND id > $2 ORDER BY id LIMIT $3";
pub(super) const BUMP_CASE: &str =
    "UPDATE cases SET version = version + 1, updated_at = $1 WHERE id = $2 RETURNING version";
pub(super) const INSERT_SUBJECT_INDEX: &str =
    "INSERT INTO subject_index (kind, digest, case_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
pub(super) const INSERT_OWNER_PSEUDONYM: &str =
    "INSERT INTO pseudonyms (recipient, pseudonym, case_id) VALUES ($1, $2, $3)
     ON CONFLICT DO NOTHING";
/// A pseudonym that arrives with a referred case: no conflict is let
/// pass, so a row that would name another case fails the whole referral
/// (the gateway checks first and says which).
pub(super) const INSERT_REFERRED_PSEUDONYM: &str =
    "INSERT INTO pseudonyms (recipient, pseudonym, case_id) VALUES ($1, $2, $3)";
pub(super) const INSERT_CONSENT: &str =
    "INSERT INTO consents (id, case_id, recorded_by, categories, purposes, valid_from,
                           valid_until, evidence_ref, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
pub(super) const INSERT_RECIPIENT: &str =
    "INSERT INTO consent_recipients (consent_id, kind, value) VALUES ($1, $2, $3)
     ON CONFLICT DO NOTHING";
pub(super) const INSERT_EVENT: &str =
    "INSERT INTO consent_events (consent_id, kind, at, by, note) VALUES ($1, $2, $3, $4, $5)";
/// A withdrawal ($2 = 'withdrawn'), only if the consent has none yet: two
/// withdrawals that raced past the gateway's check write one event, and
/// the other learns it wrote none (no row). PostgreSQL first locks the
/// consent's row (`LOCK_CONSENT`), so that the check and the insert of two
/// transactions do not interleave; SQLite has one writer.
pub(super) const INSERT_WITHDRAWAL: &str =
    "INSERT INTO consent_events (consent_id, kind, at, by, note)
     SELECT CAST($1 AS TEXT), CAST($2 AS TEXT), CAST($3 AS BIGINT), CAST($4 AS TEXT), CAST($5 AS TEXT)
      WHERE NOT EXISTS (SELECT 1 FROM consent_events
                         WHERE consent_id = CAST($1 AS TEXT) AND kind = 'withdrawn')";
pub(super) const LOCK_CONSENT: &str = "SELECT id FROM consents WHERE id = $1 FOR UPDATE";
pub(super) const INSERT_REQUEST_KEY: &str =
    "INSERT INTO request_keys (caller, request_id, method, digest, resource_id, seq, record_id,
                               created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
pub(super) const REQUEST_KEY: &str =
    "SELECT caller, request_id, method, digest, resource_id, seq, record_id, created_at
     FROM request_keys WHERE caller = $1 AND request_id = $2";
pub(super) const DELETE_REQUEST_KEY: &str =
    "DELETE FROM request_keys WHERE caller = $1 AND request_id = $2";
pub(super) const PURGE_REQUEST_KEYS: &str = "DELETE FROM request_keys WHERE created_at < $1";
pub(super) const INSERT_RELEASE: &str =
    "INSERT INTO statistics_releases (table_name, quarter, breakdown, scope, computed_at, body,
                                      sha256)
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING";
pub(super) const RELEASE: &str =
    "SELECT table_name, quarter, breakdown, scope, computed_at, body, sha256
     FROM statistics_releases
     WHERE table_name = $1 AND quarter = $2 AND breakdown = $3 AND scope = $4";
/// Releases, newest quarter first, then by table, breakdown and scope:
/// only quarter $1 unless it is empty; with breakdown `own` only if $2 is
/// 1; after the key ($3, $4, $5, $6) in that order unless $3 is empty; at
/// most $7.
pub(super) const RELEASES: &str =
    "SELECT table_name, quarter, breakdown, scope, computed_at, body, sha256
     FROM statistics_releases
     WHERE ($1 = '' OR quarter = $1) AND ($2 = 1 OR breakdown <> 'own')
       AND ($3 = '' OR quarter < $3
            OR (quarter = $3 AND (table_name, breakdown, scope)
                                 > (CAST($4 AS TEXT), CAST($5 AS TEXT), CAST($6 AS TEXT))))
     ORDER BY quarter DESC, table_name, breakdown, scope LIMIT $7";
/// The quarters with releases, newest first, at most $1.
pub(super) const RELEASE_QUARTERS: &str =
    "SELECT DISTINCT quarter FROM statistics_releases ORDER BY quarter DESC LIMIT $1";
pub(super) const INSERT_CHECKPOINT: &str = "INSERT INTO checkpoints (size, root, at, note)
     VALUES ($1, $2, $3, $4) ON CONFLICT (size) DO NOTHING";

pub(super) const CASE_META: &str = concat!(
    "SELECT ",
    case_columns!("c"),
    " FROM cases c WHERE c.id = $1"
);
pub(super) const CASE_WITH_DATA: &str = concat!(
    "SELECT ",
    case_columns!("c"),
    ", d.category, d.sealed FROM cases c LEFT JOIN case_data d ON d.case_id = c.id
     WHERE c.id = $1"
);
pub(super) const OWN_CASES: &str = concat!(
    "SELECT ",
    case_columns!("c"),
    " FROM cases c WHERE c.owner = $1 AND c.erased_at IS NULL AND c.id > $2 ORDER BY c.id LIMIT $3"
);
/// Cases of every owner but $1, by id after $2, at most $3.
pub(super) const OTHERS_CASES: &str = concat!(
    "SELECT ",
    case_columns!("c"),
    " FROM cases c WHERE c.owner <> $1 AND c.erased_at IS NULL AND c.id > $2 ORDER BY c.id LIMIT $3"
);
pub(super) const VISIBLE_CASES: &str = concat!(
    "SELECT DISTINCT ",
    case_columns!("c"),
    " FROM consent_recipients r
     JOIN consents k ON k.id = r.consent_id
     JOIN cases c ON c.id = k.case_id
     WHERE ((r.kind = 'participant' AND r.value = $1) OR (r.kind = 'role' AND r.value = $2))
       AND c.owner <> $1 AND c.erased_at IS NULL
       AND (',' || k.purposes || ',') LIKE ('%,' || $3 || ',%')
       AND k.valid_from <= $4 AND (k.valid_until IS NULL OR k.valid_until > $4)
       AND NOT EXISTS (SELECT 1 FROM consent_events e
                       WHERE e.consent_id = k.id AND e.kind = 'withdrawn')
       AND c.id > $5
     ORDER BY c.id LIMIT $6"
);
/// A page of cases (by id, after $1, at most $2) with their sealed data in
/// the categories $3, $4, $5, for statistics: one row per (case, category),
/// NULL data for a case without any of them.
pub(super) const STATISTICS_PAGE: &str = "SELECT c.id, c.owner, c.created_at, d.category, d.sealed,
            c.case_key
     FROM (SELECT id, owner, created_at, case_key FROM cases
           WHERE erased_at IS NULL AND id > $1 ORDER BY id LIMIT $2) c
     LEFT JOIN case_data d ON d.case_id = c.id AND d.category IN ($3, $4, $5)
     ORDER BY c.id, d.category";
pub(super) const RESOLVE_PSEUDONYM: &str =
    "SELECT case_id FROM pseudonyms WHERE recipient = $1 AND pseudonym = $2";
pub(super) const CASES_BY_SUBJECT: &str =
    "SELECT case_id FROM subject_index WHERE kind = $1 AND digest = $2 ORDER BY case_id";
pub(super) const CONSENT_BY_ID: &str = consents_where!("c.id = $1");
pub(super) const CONSENTS_BY_CASE: &str = consents_where!("c.case_id = $1");

/// Referral (`store::referral`): a case's creation time and the
/// pseudonyms issued for it, which move with it.
pub(super) const CASE_CREATED: &str = "SELECT created_at FROM cases WHERE id = $1";
pub(super) const PSEUDONYMS_OF_CASE: &str =
    "SELECT recipient, pseudonym FROM pseudonyms WHERE case_id = $1 ORDER BY recipient, pseudonym";
/// A referred case arrives with its version and times.
pub(super) const INSERT_REFERRED_CASE: &str =
    "INSERT INTO cases (id, owner, subject_ref, version, created_at, updated_at, subject_id,
                        case_key, key_version)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
pub(super) const REFERRED_TO: &str = "SELECT node FROM referred_cases WHERE case_id = $1";
pub(super) const INSERT_REFERRED: &str =
    "INSERT INTO referred_cases (case_id, node, request_id, at) VALUES ($1, $2, $3, $4)";
pub(super) const FORGET_REFERRED: &str = "DELETE FROM referred_cases WHERE case_id = $1";
/// Keeps the keyed subject lookups of a case that leaves (migration 0023),
/// before its `subject_index` rows are deleted with the case.
pub(super) const KEEP_REFERRED_SUBJECTS: &str =
    "INSERT INTO referred_subjects (kind, digest, case_id)
     SELECT kind, digest, case_id FROM subject_index WHERE case_id = $1
     ON CONFLICT DO NOTHING";
/// Keeps the pseudonyms issued for a case that leaves (migration 0024),
/// before its `pseudonyms` rows are deleted with the case.
pub(super) const KEEP_REFERRED_PSEUDONYMS: &str =
    "INSERT INTO referred_pseudonyms (recipient, pseudonym, case_id)
     SELECT recipient, pseudonym, case_id FROM pseudonyms WHERE case_id = $1
     ON CONFLICT (recipient, pseudonym) DO UPDATE SET case_id = excluded.case_id";
/// The case a pseudonym issued here was of, while that case's pointer is
/// kept (it left this node).
pub(super) const REFERRED_PSEUDONYM_CASE: &str = "SELECT p.case_id FROM referred_pseudonyms p
     JOIN referred_cases r ON r.case_id = p.case_id
     WHERE p.recipient = $1 AND p.pseudonym = $2";
/// The cases of a subject's keyed lookup that left this node, and the node
/// each went to, while its pointer is kept.
pub(super) const REFERRED_BY_SUBJECT: &str = "SELECT s.case_id, r.node FROM referred_subjects s
     JOIN referred_cases r ON r.case_id = s.case_id
     WHERE s.kind = $1 AND s.digest = $2 ORDER BY s.case_id";
/// Keeps a consent of a case that leaves (one that came back and leaves
/// again points at its case anew).
pub(super) const INSERT_REFERRED_CONSENT: &str =
    "INSERT INTO referred_consents (consent_id, case_id) VALUES ($1, $2)
     ON CONFLICT (consent_id) DO UPDATE SET case_id = excluded.case_id";
/// The node a consent's case went to, while the case's pointer is kept.
pub(super) const CONSENT_REFERRED_TO: &str = "SELECT r.case_id, r.node FROM referred_consents c
     JOIN referred_cases r ON r.case_id = c.case_id WHERE c.consent_id = $1";
/// Raises the highest directory serial seen (never lowers it).
pub(super) const RAISE_DIRECTORY_SERIAL: &str =
    "INSERT INTO federation_directory (id, serial) VALUES (1, $1)
     ON CONFLICT (id) DO UPDATE SET serial = excluded.serial
     WHERE excluded.serial > federation_directory.serial";
pub(super) const DIRECTORY_SERIAL: &str = "SELECT serial FROM federation_directory WHERE id = 1";
/// Takes a referral's claim on a case ($1) for request $2 at $3 until $4
/// (unix ms): one row, inserted, or taken over from a claim expired by $3;
/// no row changed while another claim is live.
pub(super) const CLAIM_REFERRAL: &str =
    "INSERT INTO referral_claims (case_id, request_id, claimed_at_ms, expires_at_ms)
     VALUES ($1, $2, $3, $4)
     ON CONFLICT (case_id) DO UPDATE SET request_id = excluded.request_id,
         claimed_at_ms = excluded.claimed_at_ms, expires_at_ms = excluded.expires_at_ms
     WHERE referral_claims.expires_at_ms <= excluded.claimed_at_ms";
/// Ends the claim request $2 holds on case $1 (never another's).
pub(super) const RELEASE_REFERRAL: &str =
    "DELETE FROM referral_claims WHERE case_id = $1 AND request_id = $2";
/// A peer's cosignature of a checkpoint; a newer one by the same witness
/// replaces it.
pub(super) const PUT_COSIGNATURE: &str =
    "INSERT INTO checkpoint_cosignatures (size, witness, timestamp, line, received_at)
     VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (size, witness) DO UPDATE SET timestamp = excluded.timestamp,
       line = excluded.line, received_at = excluded.received_at
     WHERE excluded.timestamp > checkpoint_cosignatures.timestamp";
pub(super) const COSIGNATURES: &str = "SELECT size, witness, timestamp, line FROM checkpoint_cosignatures WHERE size = $1 ORDER BY witness";
pub(super) const COSIGNED_SIZES: &str =
    "SELECT DISTINCT size FROM checkpoint_cosignatures ORDER BY size DESC";
pub(super) const WITNESSED: &str =
    "SELECT node, size, note, at FROM witnessed_checkpoints WHERE node = $1";
pub(super) const PUT_WITNESSED: &str =
    "INSERT INTO witnessed_checkpoints (node, size, note, at) VALUES ($1, $2, $3, $4)
     ON CONFLICT (node) DO UPDATE SET size = excluded.size, note = excluded.note, at = excluded.at";
pub(super) const PUT_WITNESS_ALARM: &str =
    "INSERT INTO witness_alarms (node, kind, seen_note, offered_note, detail, at)
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (node, seen_note, offered_note) DO NOTHING";
pub(super) const WITNESS_ALARMS: &str =
    "SELECT a.id, a.node, a.kind, a.seen_note, a.offered_note, a.detail, a.at,
       k.by_participant, k.note, k.request_id, k.at
     FROM witness_alarms a LEFT JOIN witness_alarm_acks k ON k.alarm_id = a.id ORDER BY a.id";
/// An operator's acknowledgement of an alarm; a second one of the same
/// alarm writes nothing.
pub(super) const PUT_ALARM_ACK: &str =
    "INSERT INTO witness_alarm_acks (alarm_id, by_participant, note, request_id, at)
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (alarm_id) DO NOTHING";
pub(super) const LOCATE_PSEUDONYM: &str =
    "SELECT node FROM federation_pseudonyms WHERE recipient = $1 AND pseudonym = $2";
pub(super) const PUT_LOCATED: &str =
    "INSERT INTO federation_pseudonyms (recipient, pseudonym, node) VALUES ($1, $2, $3)
     ON CONFLICT (recipient, pseudonym) DO UPDATE SET node = excluded.node";
pub(super) const FORGET_LOCATED: &str =
    "DELETE FROM federation_pseudonyms WHERE recipient = $1 AND pseudonym = $2";
/// What leaves with a referred case, child rows first (the pointer is
/// written before them, which lets `consent_events` rows go).
pub(super) const DELETE_CASE_ROWS: [&str; 7] = [
    "DELETE FROM consent_events WHERE consent_id IN (SELECT id FROM consents WHERE case_id = $1)",
    "DELETE FROM consent_recipients WHERE consent_id IN (SELECT id FROM consents WHERE case_id = $1)",
    "DELETE FROM consents WHERE case_id = $1",
    "DELETE FROM pseudonyms WHERE case_id = $1",
    "DELETE FROM subject_index WHERE case_id = $1",
    "DELETE FROM case_data WHERE case_id = $1",
    "DELETE FROM cases WHERE id = $1",
];

pub(super) const LOG_SIZE: &str = "SELECT COALESCE(MAX(seq) + 1, 0) FROM access_log";
pub(super) const LOG_COUNT: &str = "SELECT COUNT(*) FROM access_log";
pub(super) const LOG_LEAVES: &str =
    "SELECT seq, record FROM access_log WHERE seq >= $1 ORDER BY seq LIMIT $2";
pub(super) const LOG_POSITION: &str = "SELECT MIN(seq) FROM access_log WHERE request_id = $1";
/// The filters of [`QUERY_LOG`], `$1` to `$11`: a case ($9) takes, besides
/// its own entries, the listings that named it by its audit pseudonym ($10).
macro_rules! log_filter {
    () => {
        " FROM access_log
     WHERE seq >= $1
       AND ($2 IS NULL OR at >= $2) AND ($3 IS NULL OR at < $3)
       AND ($4 IS NULL OR caller = $4) AND ($5 IS NULL OR role = $5)
       AND ($6 IS NULL OR method = $6) AND ($7 IS NULL OR purpose = $7)
       AND ($8 IS NULL OR decision = $8)
       AND ($9 IS NULL OR case_id = $9
            OR seq IN (SELECT seq FROM access_log_subjects WHERE subject = $10))
       AND ($11 IS NULL OR subject = $11
            OR seq IN (SELECT seq FROM access_log_subjects WHERE subject = $11))"
    };
}
pub(super) const QUERY_LOG: &str = concat!(
    "SELECT ",
    log_columns!(),
    log_filter!(),
    " ORDER BY seq LIMIT $12"
);
/// [`QUERY_LOG`] for one case ($9): the entries below `$12` through the
/// index behind the log (`log_index_case`, migration 0022), those from
/// `$12` on (not yet indexed) read from the log itself, so the answer is
/// complete however far the index is behind; and the listings that named
/// the case ($10, `access_log_subjects`). `$12` is the index's progress
/// ([`INDEX_UPTO`]) read before; `$13` the limit. (SQLite numbers `$N`
/// parameters in the order they first appear, so they appear in order.)
pub(super) const QUERY_LOG_BY_CASE: &str = concat!(
    "SELECT ",
    log_columns!(),
    log_filter!(),
    " AND seq IN (SELECT seq FROM log_index_case WHERE case_id = $9 AND seq >= $1 AND seq < $12
                   UNION ALL
                   SELECT seq FROM access_log WHERE seq >= $12 AND seq >= $1 AND case_id = $9
                   UNION ALL
                   SELECT seq FROM access_log_subjects WHERE subject = $10 AND seq >= $1)
     ORDER BY seq LIMIT $13"
);
/// A subject's entries: its case's (through the index behind the log
/// below `$3`, from the log itself from `$3` on, as in
/// [`QUERY_LOG_BY_CASE`]), and those naming it among their other subjects
/// (`access_log_subjects`).
pub(super) const SUBJECT_LOG: &str = concat!(
    "SELECT ",
    log_columns!(),
    " FROM access_log
     WHERE seq >= $1
       AND seq IN (SELECT seq FROM log_index_case WHERE case_id = $2 AND seq >= $1 AND seq < $3
                   UNION ALL
                   SELECT seq FROM access_log WHERE seq >= $3 AND seq >= $1 AND case_id = $2
                   UNION ALL
                   SELECT seq FROM access_log_subjects WHERE subject = $4 AND seq >= $1)
     ORDER BY seq LIMIT $5"
);
/// How far the index of the log by case has caught up: entries below this
/// position are in `log_index_case` (migration 0022).
pub(super) const INDEX_UPTO: &str =
    "SELECT COALESCE((SELECT upto FROM log_index_progress WHERE name = 'case'), 0)";
/// [`INDEX_UPTO`] and the log's size ([`LOG_SIZE`]), read together.
pub(super) const INDEX_PROGRESS: &str =
    "SELECT COALESCE((SELECT upto FROM log_index_progress WHERE name = 'case'), 0),
            (SELECT COALESCE(MAX(seq) + 1, 0) FROM access_log)";
/// The follower's batch: the entries `$1 .. $2` that have a case, inserted
/// sorted as the index is, so that each leaf page of it is written once.
/// A row already there (a batch redone) is kept.
pub(super) const INDEX_BATCH: &str = "INSERT INTO log_index_case (case_id, seq)
     SELECT case_id, seq FROM access_log
     WHERE seq >= $1 AND seq < $2 AND case_id IS NOT NULL ORDER BY case_id, seq
     ON CONFLICT DO NOTHING";
pub(super) const SET_INDEX_UPTO: &str = "INSERT INTO log_index_progress (name, upto)
     VALUES ('case', $1) ON CONFLICT (name) DO UPDATE SET upto = excluded.upto";
/// `audit verify`: entries below the index's progress that have a case
/// but no row in the index (the first few, in order).
pub(super) const INDEX_MISSING: &str = "SELECT a.seq FROM access_log a
     WHERE a.seq < $1 AND a.case_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM log_index_case i WHERE i.case_id = a.case_id AND i.seq = a.seq)
     ORDER BY a.seq LIMIT $2";
/// `audit verify`: index rows no entry below the progress accounts for
/// (a row for a later entry, for no entry, or naming another case).
pub(super) const INDEX_EXTRA: &str = "SELECT i.seq FROM log_index_case i
     WHERE i.seq >= $1
        OR NOT EXISTS (SELECT 1 FROM access_log a WHERE a.seq = i.seq AND a.case_id = i.case_id)
     ORDER BY i.seq LIMIT $2";
/// Alerts of emergency accesses (migration 0009): an emergency access's
/// position and request id, stored with its entry; a review's position
/// beside the access it closes, stored with the review's entry. One review
/// per access: a second one is refused by the primary key.
pub(super) const INSERT_EMERGENCY_ACCESS: &str =
    "INSERT INTO emergency_accesses (seq, request_id) VALUES ($1, $2)";
/// (SQLite numbers `$N` parameters in the order they first appear, so
/// they appear here in order.)
pub(super) const INSERT_EMERGENCY_REVIEW: &str =
    "INSERT INTO emergency_reviews (review_seq, access_seq)
     SELECT $1, seq FROM emergency_accesses WHERE request_id = $2";
/// Emergency accesses from position $1 on, the reviewed ones too when $2
/// is 1, at most $3.
pub(super) const EMERGENCY_ALERTS: &str = concat!(
    "SELECT ",
    log_columns!(),
    " FROM access_log
     WHERE seq IN (SELECT a.seq FROM emergency_accesses a
                   WHERE a.seq >= $1
                     AND ($2 = 1 OR NOT EXISTS
                          (SELECT 1 FROM emergency_reviews r WHERE r.access_seq = a.seq)))
     ORDER BY seq LIMIT $3"
);
/// The entry of the review of the emergency access at position $1.
pub(super) const EMERGENCY_REVIEW: &str = concat!(
    "SELECT ",
    log_columns!(),
    " FROM access_log
     WHERE seq = (SELECT review_seq FROM emergency_reviews WHERE access_seq = $1)"
);
/// The log's tree as hash tiles (migration 0007, `store::tiles`).
pub(super) const INSERT_EDGE: &str = "INSERT INTO log_edge (start, hashes) VALUES ($1, $2)";
/// The edge rows of level-0 tile $1 (positions `$1·256 .. $1·256 + 256`).
pub(super) const EDGE_OF_TILE: &str = "SELECT start, hashes FROM log_edge
     WHERE start >= $1 * 256 AND start < ($1 + 1) * 256 ORDER BY start";
pub(super) const DELETE_EDGE_OF_TILE: &str =
    "DELETE FROM log_edge WHERE start >= $1 * 256 AND start < ($1 + 1) * 256";
pub(super) const TILE: &str = "SELECT hashes FROM log_tiles WHERE level = $1 AND idx = $2";
pub(super) const PUT_TILE: &str = "INSERT INTO log_tiles (level, idx, hashes) VALUES ($1, $2, $3)
     ON CONFLICT (level, idx) DO UPDATE SET hashes = excluded.hashes";
/// Tiles of level $1 with index in `[$2, $3]`, for the verifier's scan.
pub(super) const TILES_IN: &str = "SELECT level, idx, hashes FROM log_tiles
     WHERE level = $1 AND idx >= $2 AND idx <= $3 ORDER BY idx";
/// Edge rows with positions in `[$1, $2)`, for the verifier's scan.
pub(super) const EDGE_IN: &str =
    "SELECT start, hashes FROM log_edge WHERE start >= $1 AND start < $2 ORDER BY start";
pub(super) const LATEST_CHECKPOINT: &str =
    "SELECT size, root, at, note FROM checkpoints ORDER BY size DESC LIMIT 1";
pub(super) const CHECKPOINT_AT: &str =
    "SELECT size, root, at, note FROM checkpoints WHERE size = $1";
pub(super) const CHECKPOINTS: &str = "SELECT size, root, at, note FROM checkpoints ORDER BY size";

/// Every statement above that takes parameters, for the test that checks
/// their order on SQLite.
#[cfg(test)]
pub(super) const WITH_PARAMETERS: &[&str] = &[
    INSERT_CASE,
    INSERT_CASE_DATA,
    UPSERT_CASE_DATA,
    BUMP_CASE,
    DELETE_CASE_DATA,
    DELETE_ALL_CASE_DATA,
    GUARD_CASE,
    SET_CASE_KEY,
    ERASE_CASE,
    REWRAP_CASE_KEY,
    CASE_KEYS_BELOW,
    LEGACY_CASES,
    CASES_UNCHANGED_SINCE,
    SET_SUBJECT_ID,
    INSERT_SUBJECT_INDEX,
    INSERT_OWNER_PSEUDONYM,
    INSERT_REFERRED_PSEUDONYM,
    KEEP_REFERRED_SUBJECTS,
    REFERRED_BY_SUBJECT,
    KEEP_REFERRED_PSEUDONYMS,
    REFERRED_PSEUDONYM_CASE,
    INSERT_CONSENT,
    INSERT_RECIPIENT,
    INSERT_EVENT,
    INSERT_WITHDRAWAL,
    INSERT_CHECKPOINT,
    INSERT_RELEASE,
    RELEASE,
    INSERT_REQUEST_KEY,
    REQUEST_KEY,
    DELETE_REQUEST_KEY,
    PURGE_REQUEST_KEYS,
    CASE_META,
    CASE_WITH_DATA,
    OWN_CASES,
    OTHERS_CASES,
    VISIBLE_CASES,
    STATISTICS_PAGE,
    RESOLVE_PSEUDONYM,
    CASES_BY_SUBJECT,
    CONSENT_BY_ID,
    CONSENTS_BY_CASE,
    CASE_CREATED,
    PSEUDONYMS_OF_CASE,
    INSERT_REFERRED_CASE,
    REFERRED_TO,
    INSERT_REFERRED,
    FORGET_REFERRED,
    INSERT_REFERRED_CONSENT,
    CONSENT_REFERRED_TO,
    RAISE_DIRECTORY_SERIAL,
    CLAIM_REFERRAL,
    RELEASE_REFERRAL,
    PUT_COSIGNATURE,
    COSIGNATURES,
    WITNESSED,
    PUT_WITNESSED,
    PUT_WITNESS_ALARM,
    PUT_ALARM_ACK,
    LOCATE_PSEUDONYM,
    PUT_LOCATED,
    FORGET_LOCATED,
    LOG_LEAVES,
    LOG_POSITION,
    QUERY_LOG,
    SUBJECT_LOG,
    CHECKPOINT_AT,
    INSERT_EDGE,
    EDGE_OF_TILE,
    DELETE_EDGE_OF_TILE,
    TILE,
    PUT_TILE,
    TILES_IN,
    EDGE_IN,
];
