//! A node whose log was stored in the previous layout — one row per tree
//! node (`merkle_nodes`), schema version 6 — is brought to the tiled one
//! (C2SP hash tiles, migration 0007) by `sluis migrate`: the tiles are
//! rebuilt from the entries, their root is proven equal to the latest
//! signed checkpoint, and only then is the old table dropped. A log whose
//! entries no longer give that root keeps its old table and does not open.
//!
//! SQLite: the previous layout is made by editing the file the way the
//! schema of version 6 had it.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use pb::Category as C;
use sluis::config::Config;
use sluis::rpc::proto::v1 as pb;

/// A stopped node with a few dozen entries of real requests, all signed.
async fn node_with_log() -> (tempfile::TempDir, Config, i64) {
    let node = TestNode::start_on_sqlite(|c| c.node.checkpoint_interval_ms = 20).await;
    let mut gemeente = node.client(GEMEENTE).await;
    let mut ngo = node.client(NGO).await;
    for _ in 0..4 {
        let (case_id, _) = register(&mut gemeente).await;
        grant(
            &mut gemeente,
            &case_id,
            vec![participant(NGO)],
            &[C::Shelter, C::Guidance],
            &["shelter"],
        )
        .await;
        for _ in 0..5 {
            ngo.cases
                .get_case(by_id(&case_id, "shelter"))
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let store = &node.node.store;
    let mut n = 0;
    for _ in 0..200 {
        n = store.log_size().await.unwrap();
        if store.latest_checkpoint().await.unwrap().map(|c| c.size) == Some(n) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(n > 20, "the log has {n} entries");
    let TestNode { dir, node, config } = node;
    node.shutdown().await.unwrap();
    (dir, config, n)
}

fn node_hash(left: &[u8], right: &[u8]) -> Vec<u8> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(&[0x01]);
    ctx.update(left);
    ctx.update(right);
    ctx.finish().as_ref().to_vec()
}

/// Turns the node's database back into the previous layout: the tiles'
/// tables gone, the later migration's case key columns too (their values
/// kept aside, for [`restore_case_keys`]), every perfect node of the tree (RFC 6962) one row of
/// `merkle_nodes`, keyed by the size at which it completes, schema
/// version 6 (so what later migrations made goes too: migration 0010's
/// federation tables and consent-event trigger).
fn to_previous_layout(db: &Path) {
    let c = rusqlite::Connection::open(db).unwrap();
    let records: Vec<Vec<u8>> = c
        .prepare("SELECT record FROM access_log ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    c.execute_batch(
        "DROP TABLE emergency_reviews;
         DROP TABLE emergency_accesses;
         DROP TABLE log_tiles;
         DROP TABLE log_edge;
         CREATE TABLE merkle_nodes (
             end_size INTEGER NOT NULL,
             level    INTEGER NOT NULL,
             hash     BLOB NOT NULL,
             PRIMARY KEY (end_size, level)
         ) WITHOUT ROWID;
         CREATE TRIGGER merkle_nodes_append_only_u BEFORE UPDATE ON merkle_nodes
         BEGIN SELECT RAISE(ABORT, 'the log tree is append-only'); END;
         CREATE TRIGGER merkle_nodes_append_only_d BEFORE DELETE ON merkle_nodes
         BEGIN SELECT RAISE(ABORT, 'the log tree is append-only'); END;
         DROP TABLE referral_claims;
         DROP TABLE referred_pseudonyms;
         DROP TABLE referred_subjects;
         DROP TABLE referred_consents;
         DROP INDEX access_log_node_steps;
         DROP TABLE log_index_case;
         DROP TABLE log_index_progress;
         CREATE INDEX access_log_by_case ON access_log (case_id, seq);
         DROP TABLE witness_alarm_acks;
         DROP TABLE federation_directory;
         DROP TABLE checkpoint_cosignatures;
         DROP TABLE witnessed_checkpoints;
         DROP TABLE witness_alarms;
         DROP TABLE referred_cases;
         DROP TABLE federation_pseudonyms;
         DROP TRIGGER consent_events_append_only_d;
         CREATE TRIGGER consent_events_append_only_d BEFORE DELETE ON consent_events
         BEGIN SELECT RAISE(ABORT, 'consent events are append-only'); END;
         CREATE TABLE saved_case_keys AS SELECT id, case_key, key_version FROM cases;
         DROP INDEX cases_by_key_version;
         DROP INDEX cases_by_update;
         ALTER TABLE cases DROP COLUMN case_key;
         ALTER TABLE cases DROP COLUMN key_version;
         ALTER TABLE cases DROP COLUMN erased_at;
         PRAGMA user_version = 6;",
    )
    .unwrap();
    let mut insert = c
        .prepare("INSERT INTO merkle_nodes (end_size, level, hash) VALUES (?1, ?2, ?3)")
        .unwrap();
    // The right edge of the tree: complete subtrees, highest level first.
    let mut edge: Vec<(u32, Vec<u8>)> = Vec::new();
    for (i, record) in records.iter().enumerate() {
        let end = i as i64 + 1;
        let mut hash = sluis::tlog::merkle::leaf_hash(record).to_vec();
        let mut level = 0u32;
        insert.execute(rusqlite::params![end, level, hash]).unwrap();
        while edge.last().is_some_and(|(l, _)| *l == level) {
            let (_, left) = edge.pop().unwrap();
            hash = node_hash(&left, &hash);
            level += 1;
            insert.execute(rusqlite::params![end, level, hash]).unwrap();
        }
        edge.push((level, hash));
    }
}

/// Puts back the case keys [`to_previous_layout`] kept aside: the cases
/// were sealed under them (this test is about the log's tree).
fn restore_case_keys(db: &Path) {
    rusqlite::Connection::open(db)
        .unwrap()
        .execute_batch(
            "UPDATE cases SET
                 case_key = (SELECT s.case_key FROM saved_case_keys s WHERE s.id = cases.id),
                 key_version = (SELECT s.key_version FROM saved_case_keys s WHERE s.id = cases.id);
             DROP TABLE saved_case_keys;",
        )
        .unwrap();
}

fn migrate(config: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sluis"))
        .args(["migrate", "--config"])
        .arg(config)
        .output()
        .unwrap()
}

fn tables(db: &Path) -> Vec<String> {
    let c = rusqlite::Connection::open(db).unwrap();
    c.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_rebuilds_the_tree_as_tiles_and_proves_it_before_dropping_the_old() {
    let (dir, config, n) = node_with_log().await;
    let db = config.sqlite_path().unwrap();
    let config_path = dir.path().join("sluis.toml");
    to_previous_layout(&db);
    assert!(tables(&db).contains(&"merkle_nodes".to_string()));

    let out = migrate(&config_path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let now = tables(&db);
    assert!(!now.contains(&"merkle_nodes".to_string()), "{now:?}");
    let c = rusqlite::Connection::open(&db).unwrap();
    let leaf_bytes: i64 = c
        .query_row(
            "SELECT (SELECT COALESCE(SUM(length(hashes)), 0) FROM log_tiles WHERE level = 0)
                  + (SELECT COALESCE(SUM(length(hashes)), 0) FROM log_edge)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(leaf_bytes, 32 * n, "one leaf hash per entry");
    // Migration 0022 indexed the log by case up to its end, in place of
    // the index in the log's own table.
    let (indexed, with_case, upto): (i64, i64, i64) = c
        .query_row(
            "SELECT (SELECT COUNT(*) FROM log_index_case),
                    (SELECT COUNT(*) FROM access_log WHERE case_id IS NOT NULL),
                    (SELECT upto FROM log_index_progress WHERE name = 'case')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert!(with_case > 0);
    assert_eq!((indexed, upto), (with_case, n));
    let old_index: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'access_log_by_case'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(old_index, 0);
    drop(c);
    let report = verify_log_of(&config).await;
    assert!(report.intact(), "{:?}", report.problems);
    assert_eq!(report.entries, n as u64);

    // The level-0 tile, read natively, is the entries' leaf hashes in
    // order (C2SP tlog-tiles `tile/0/000`, partial here); none beyond it.
    let (store, _) =
        sluis::store::Store::open(&config.database_url().unwrap(), &Default::default(), false)
            .await
            .unwrap();
    let leaves: Vec<u8> = store
        .access_log(0, n)
        .await
        .unwrap()
        .iter()
        .flat_map(|r| sluis::tlog::merkle::leaf_hash(&r.record))
        .collect();
    assert_eq!(store.hash_tile(0, 0).await.unwrap(), Some(leaves));
    assert_eq!(store.hash_tile(0, 1).await.unwrap(), None);
    assert_eq!(store.hash_tile(1, 0).await.unwrap(), None);
    store.close().await;

    // The node starts on it and goes on appending to the same tree.
    restore_case_keys(&db);
    let node = sluis::node::Node::start(&config).await.unwrap();
    node.shutdown().await.unwrap();
    let report = verify_log_of(&config).await;
    assert!(report.intact(), "{:?}", report.problems);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_that_no_longer_gives_its_checkpoint_keeps_its_old_tree() {
    let (dir, config, _) = node_with_log().await;
    let db = config.sqlite_path().unwrap();
    to_previous_layout(&db);
    // An entry changed after it was signed.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "DROP TRIGGER access_log_append_only_u;
             UPDATE access_log SET record = (SELECT record FROM access_log WHERE seq = 6)
             WHERE seq = 5;",
        )
        .unwrap();

    let out = migrate(&dir.path().join("sluis.toml"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("checkpoint"), "{stderr}");
    assert!(tables(&db).contains(&"merkle_nodes".to_string()));
}
