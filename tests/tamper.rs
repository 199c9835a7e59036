//! Someone with write access to the database edits the access log directly
//! (after dropping the append-only triggers), and `sluis audit verify`
//! catches every edit with a non-zero exit and the index of the first entry
//! it concerns. A log rebuilt from scratch and re-signed with the node's own
//! key passes on its own, but not against a checkpoint saved earlier.
//!
//! Everything is real: a node over mTLS writes the log, the edits go to the
//! database of a copy of the node's folder, and the verifier is the `sluis`
//! binary. On SQLite the copy's database is a copy of the file; on
//! PostgreSQL (`SLUIS_TEST_BACKEND=postgres`) it is a copy of the node's
//! database (`CREATE DATABASE … TEMPLATE`) that the copied sluis.toml names.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use sluis::config::Config;
use sluis::node::Node;
use sluis::rpc::proto::v1 as pb;
use sluis::store::Store;
use sluis::tlog::{AccessRecord, Decision};

use pb::Category as C;

/// Checkpoints every 20 ms, so a short run of requests gets several. On
/// PostgreSQL, whose commits may take longer than that (an fsync on the
/// server), every 100 ms: the tests need entries between checkpoints, and a
/// node whose every request outlasts the interval signs a checkpoint over
/// every entry.
fn checkpoint_ms() -> u64 {
    if on_postgres() { 100 } else { 20 }
}

/// A stopped node whose log was written by real requests.
struct Pristine {
    dir: tempfile::TempDir,
    /// Entries in the log.
    n: i64,
    /// Sizes of the signed checkpoints, smallest first.
    checkpoints: Vec<i64>,
    /// The latest checkpoint's signed note, as a privacy officer saves it.
    saved_note: PathBuf,
}

impl Pristine {
    fn config_path(&self) -> PathBuf {
        self.dir.path().join("sluis.toml")
    }
}

/// Writes [`PRISTINE_SIZE`] access records through a real node: registrations,
/// consents, reads by several participants and some refusals, in rounds
/// with pauses between them so that several checkpoints get signed.
async fn build_pristine() -> Pristine {
    build_log(PRISTINE_SIZE).await
}

/// A stopped node whose log holds exactly `size` entries of real requests.
async fn build_log(size: i64) -> Pristine {
    let node = TestNode::start_with(|c| c.node.checkpoint_interval_ms = checkpoint_ms()).await;
    traffic(&node, size).await;
    let (n, checkpoints) = wait_until_signed(&node.node.store).await;
    let cp = node.node.store.latest_checkpoint().await.unwrap().unwrap();
    assert_eq!(cp.size, n);
    let saved_note = node.dir.path().join("saved-checkpoint.note");
    std::fs::write(&saved_note, &cp.note).unwrap();
    let TestNode { dir, node, .. } = node;
    node.shutdown().await.unwrap();
    checkpoint_wal(dir.path()).await;
    Pristine {
        dir,
        n,
        checkpoints,
        saved_note,
    }
}

/// Entries in the pristine log: 2^6 - 1, so that one more entry completes
/// the tree's largest subtree, over entries 0..63. An entry forged at the
/// end must still be reported at its own index, not at the first entry of
/// the subtree it completes.
const PRISTINE_SIZE: i64 = 63;

/// Real requests until the log holds exactly `exact` entries: rounds of
/// registrations, consents, reads by several participants and refusals,
/// with pauses longer than the checkpoint interval between them, then
/// single reads to reach the exact size.
async fn traffic(node: &TestNode, exact: i64) {
    let mut gemeente = node.client(GEMEENTE).await;
    let mut ngo = node.client(NGO).await;
    let mut dtv = node.client("dtv").await;
    let mut ind = node.client("ind").await;
    let mut avim = node.client("avim").await;
    let mut last_case = None;
    for _round in 0..exact {
        // A round writes 9 entries; leave room to end on the exact size.
        if node.log_len().await + 12 > exact {
            break;
        }
        let (case_id, _) = register(&mut gemeente).await;
        grant(
            &mut gemeente,
            &case_id,
            vec![participant(NGO)],
            &[C::Identity, C::Shelter, C::Guidance],
            &["shelter", "guidance"],
        )
        .await;
        grant(
            &mut gemeente,
            &case_id,
            vec![role("dtv")],
            &[C::Perspective, C::ResidenceProcedure],
            &["return"],
        )
        .await;
        ngo.cases
            .get_case(by_id(&case_id, "shelter"))
            .await
            .unwrap();
        dtv.cases.get_case(by_id(&case_id, "return")).await.unwrap();
        // Reads without consent or permission: recorded as refused.
        let _ = ind.cases.get_case(by_id(&case_id, "legalisation")).await;
        let _ = avim.cases.get_case(by_id(&case_id, "return")).await;
        // Malformed and unknown: refused before any decision, still recorded.
        let bad_purpose = ngo.cases.get_case(by_id(&case_id, "curiosity")).await;
        assert!(bad_purpose.is_err());
        let unknown = dtv
            .cases
            .get_case(by_id("0190f2a0-0000-7000-8000-000000000000", "return"))
            .await;
        assert!(unknown.is_err());
        last_case = Some(case_id);
        // A pause longer than the checkpoint interval between rounds.
        tokio::time::sleep(Duration::from_millis(2 * checkpoint_ms())).await;
    }
    let case_id = last_case.expect("at least one round");
    for _ in 0..exact {
        let n = node.log_len().await;
        assert!(n <= exact, "the log has {n} entries, more than {exact}");
        if n == exact {
            return;
        }
        ngo.cases
            .get_case(by_id(&case_id, "guidance"))
            .await
            .unwrap();
    }
    panic!("the log did not reach {exact} entries");
}

/// Waits (bounded) until the latest checkpoint covers the whole log; returns
/// the log's size and the checkpoint sizes.
async fn wait_until_signed(store: &Store) -> (i64, Vec<i64>) {
    for _ in 0..200 {
        let n = store.log_size().await.unwrap();
        let latest = store.latest_checkpoint().await.unwrap().map(|c| c.size);
        if n > 0 && latest == Some(n) {
            let sizes = store
                .checkpoints()
                .await
                .unwrap()
                .iter()
                .map(|c| c.size)
                .collect();
            return (n, sizes);
        }
        tokio::time::sleep(Duration::from_millis(checkpoint_ms())).await;
    }
    panic!("no checkpoint covering the whole log was signed");
}

/// A connection to a node's database: the SQLite file or the PostgreSQL
/// database its sluis.toml names.
struct Db {
    conn: Database,
}

impl Db {
    async fn of_node(dir: &Path) -> Db {
        Db {
            conn: connect_database(&database_url_of(dir)).await,
        }
    }

    fn postgres(&self) -> bool {
        self.conn.is_postgres()
    }

    async fn close(self) {
        self.conn.close().await;
    }
}

/// Folds the WAL into the database file, so a copy of the file is complete
/// (SQLite; a PostgreSQL database is copied by the server).
async fn checkpoint_wal(node_dir: &Path) {
    let mut db = Db::of_node(node_dir).await;
    if !db.postgres() {
        db.conn
            .execute("PRAGMA wal_checkpoint(TRUNCATE)", &[])
            .await;
    }
    db.close().await;
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A copy of the node folder's files (config, keys, PKI, policy and, on
/// SQLite, the database file).
fn copy_folder(from: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(from, dir.path());
    dir
}

/// A copy of the whole node: its folder and its database. On PostgreSQL
/// the database is copied on the server and the copied sluis.toml points at
/// the copy, so edits never reach the original. The original's node must be
/// stopped and every connection to its database closed.
async fn copy_node(from: &Path) -> tempfile::TempDir {
    let dir = copy_folder(from);
    if on_postgres() {
        let copy = copy_postgres_database(&database_url_of(from)).await;
        set_database(dir.path(), &copy);
    }
    dir
}

/// What an attacker with write access to the database does first: drop the
/// append-only triggers.
async fn attacker(node_dir: &Path) -> Db {
    let mut db = Db::of_node(node_dir).await;
    let drops: &[&str] = if db.postgres() {
        &[
            "DROP TRIGGER access_log_append_only ON access_log",
            "DROP TRIGGER log_tiles_grow_only ON log_tiles",
            "DROP TRIGGER log_edge_append_only ON log_edge",
            "DROP TRIGGER log_index_case_append_only ON log_index_case",
        ]
    } else {
        &[
            "DROP TRIGGER access_log_append_only_u",
            "DROP TRIGGER access_log_append_only_d",
            "DROP TRIGGER log_tiles_grow_only",
            "DROP TRIGGER log_tiles_append_only_d",
            "DROP TRIGGER log_edge_append_only_u",
            "DROP TRIGGER log_edge_moved_only",
            "DROP TRIGGER log_index_case_append_only_u",
            "DROP TRIGGER log_index_case_append_only_d",
        ]
    };
    for sql in drops {
        db.conn.execute(sql, &[]).await;
    }
    db
}

struct Verdict {
    code: Option<i32>,
    json: serde_json::Value,
    stdout: String,
    stderr: String,
}

impl Verdict {
    fn intact(&self) -> bool {
        self.json["intact"] == serde_json::Value::Bool(true)
    }
    fn first_bad_index(&self) -> Option<u64> {
        self.json["first_bad_index"].as_u64()
    }
    fn problems(&self) -> Vec<String> {
        self.json["problems"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .map(|p| format!("{}: {}", p["index"], p["what"].as_str().unwrap_or("")))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}, stdout: {}, stderr: {}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// `sluis audit verify --config CONFIG [--trusted-checkpoint NOTE] [--json]`.
fn run_verify(config: &Path, trusted: Option<&Path>, json: bool) -> Verdict {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluis"));
    cmd.args(["audit", "verify", "--config"]).arg(config);
    if let Some(t) = trusted {
        cmd.arg("--trusted-checkpoint").arg(t);
    }
    if json {
        cmd.arg("--json");
    }
    let out = cmd.output().expect("run sluis audit verify");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let json = if json {
        serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("verify --json printed no JSON ({e}): {stdout}"))
    } else {
        serde_json::Value::Null
    };
    Verdict {
        code: out.status.code(),
        json,
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn verify_json(config: &Path, trusted: Option<&Path>) -> Verdict {
    run_verify(config, trusted, true)
}

/// A row of the access log, every column.
#[derive(Clone, Debug)]
struct Entry {
    request_id: String,
    at: i64,
    caller: String,
    role: String,
    method: String,
    case_id: Option<String>,
    subject: Option<String>,
    purpose: Option<String>,
    decision: String,
    record: Vec<u8>,
}

impl Entry {
    /// A plausible record nobody made: a DT&V read that never happened.
    fn forged(seq: i64) -> Entry {
        let mut r = AccessRecord::new(
            format!("0190f2a0-0000-7000-8000-{seq:012}"),
            1_767_225_600_000 + seq,
            "GetCase",
        );
        r.caller = "dtv".into();
        r.role = "dtv".into();
        r.case_id = Some("0190f2a0-1111-7000-8000-000000000001".into());
        r.subject = Some("ps1.forged".into());
        r.purpose = Some("return".into());
        r.decision = Decision::Allowed;
        r.status = "OK".into();
        r.rules = vec!["dtv-return-residence".into()];
        Entry {
            request_id: r.request_id.clone(),
            at: r.at,
            caller: r.caller.clone(),
            role: r.role.clone(),
            method: r.method.clone(),
            case_id: r.case_id.clone(),
            subject: r.subject.clone(),
            purpose: r.purpose.clone(),
            decision: r.decision.as_str().into(),
            record: r.encode(),
        }
    }
}

async fn read_entry(db: &mut Db, seq: i64) -> Entry {
    let r = db
        .conn
        .query_one(
            "SELECT request_id, at, caller, role, method, case_id, subject, purpose, decision, record
             FROM access_log WHERE seq = ?",
            &[seq.into()],
        )
        .await;
    Entry {
        request_id: r[0].text(),
        at: r[1].int(),
        caller: r[2].text(),
        role: r[3].text(),
        method: r[4].text(),
        case_id: r[5].opt_text(),
        subject: r[6].opt_text(),
        purpose: r[7].opt_text(),
        decision: r[8].text(),
        record: r[9].blob(),
    }
}

async fn write_entry(db: &mut Db, seq: i64, e: &Entry) {
    db.conn
        .execute(
            "INSERT INTO access_log (seq, request_id, at, caller, role, method, case_id, subject,
                                 purpose, decision, record)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (seq) DO UPDATE SET
           request_id = excluded.request_id, at = excluded.at, caller = excluded.caller,
           role = excluded.role, method = excluded.method, case_id = excluded.case_id,
           subject = excluded.subject, purpose = excluded.purpose,
           decision = excluded.decision, record = excluded.record",
            &[
                seq.into(),
                (&e.request_id).into(),
                e.at.into(),
                (&e.caller).into(),
                (&e.role).into(),
                (&e.method).into(),
                (&e.case_id).into(),
                (&e.subject).into(),
                (&e.purpose).into(),
                (&e.decision).into(),
                (&e.record).into(),
            ],
        )
        .await;
}

async fn exec(db: &mut Db, sql: &'static str, seq: i64) -> u64 {
    db.conn.execute(sql, &[seq.into()]).await
}

/// An index in the middle of the log that is not the size of a signed
/// checkpoint: the verifier must find the exact entry, not only the
/// checkpoint interval it falls in.
fn middle_index(p: &Pristine, near: i64) -> i64 {
    (near..p.n - 1)
        .find(|i| *i > 0 && !p.checkpoints.contains(i))
        .expect("an index between checkpoints")
}

/// One way of editing the log, and where the verifier must say it starts.
enum Tamper {
    FlipRecordByte(i64),
    Delete(i64),
    Swap(i64, i64),
    AppendForged,
    TruncateAndAppend {
        from: i64,
        forged: i64,
    },
    /// Change the stored leaf hash of an entry, in its hash tile or in the
    /// growing edge of level 0.
    RewriteLeafHash(i64),
    /// Change the hash of a higher tile (tile level 1: the node over
    /// entries `256·k .. 256·k + 256`), given as `k`.
    RewriteUpperHash(i64),
    /// Remove a full level-0 hash tile (entries `256·k ..`), given as `k`.
    DeleteTile(i64),
    ChangeCaller(i64),
    /// Blank the case column of an entry about a case, hiding it from
    /// queries by case.
    NullCaseColumn(i64),
    /// Remove the row of the index of the log by case (kept behind the
    /// log) of the first indexed entry from `i`, hiding it from queries by
    /// its case.
    DeleteIndexRow(i64),
    /// Add a row to the index of the log by case naming entry `i` under a
    /// case it is not about, showing it in that case's queries.
    AddIndexRow(i64),
    /// Add a hash no tree has: the edge row holding the entry gets one
    /// more, which overlaps the next row (or lies past the log's end).
    StrayNode(i64),
    /// Store a number where the record belongs (SQLite only: PostgreSQL's
    /// columns are typed).
    RecordNotBlob(i64),
}

impl Tamper {
    fn name(&self) -> String {
        match self {
            Tamper::FlipRecordByte(i) => format!("flip a byte in the record of entry {i}"),
            Tamper::Delete(i) => format!("delete entry {i}"),
            Tamper::Swap(i, j) => format!("swap entries {i} and {j}"),
            Tamper::AppendForged => "append a forged entry".into(),
            Tamper::TruncateAndAppend { from, forged } => {
                format!("cut the log at {from} and append {forged} forged entries")
            }
            Tamper::RewriteLeafHash(i) => format!("rewrite the stored leaf hash of entry {i}"),
            Tamper::RewriteUpperHash(k) => {
                format!(
                    "rewrite the level-1 tile's hash over entries from {}",
                    256 * k
                )
            }
            Tamper::DeleteTile(k) => format!("delete the level-0 hash tile {k}"),
            Tamper::ChangeCaller(i) => format!("change the caller column of entry {i}"),
            Tamper::NullCaseColumn(i) => {
                format!("blank the case column of the first entry about a case from {i}")
            }
            Tamper::DeleteIndexRow(i) => {
                format!("delete the index-by-case row of the first indexed entry from {i}")
            }
            Tamper::AddIndexRow(i) => {
                format!("add an index-by-case row naming entry {i} under another case")
            }
            Tamper::StrayNode(i) => format!("add a stray tree node at entry {i}"),
            Tamper::RecordNotBlob(i) => format!("store a number as the record of entry {i}"),
        }
    }

    /// Edits the copy's database; returns the index verify must report.
    async fn apply(&self, db: &mut Db, n: i64) -> i64 {
        match *self {
            Tamper::FlipRecordByte(i) => {
                let mut e = read_entry(db, i).await;
                let at = e.record.len() / 2;
                e.record[at] ^= 0x01;
                write_entry(db, i, &e).await;
                i
            }
            Tamper::Delete(i) => {
                let gone = exec(db, "DELETE FROM access_log WHERE seq = ?", i).await;
                assert_eq!(gone, 1);
                i
            }
            Tamper::Swap(i, j) => {
                let (a, b) = (read_entry(db, i).await, read_entry(db, j).await);
                write_entry(db, i, &b).await;
                write_entry(db, j, &a).await;
                i
            }
            Tamper::AppendForged => {
                write_entry(db, n, &Entry::forged(n)).await;
                n
            }
            Tamper::TruncateAndAppend { from, forged } => {
                let gone = exec(db, "DELETE FROM access_log WHERE seq >= ?", from).await;
                assert!(forged > gone as i64, "more appended than removed");
                for seq in from..from + forged {
                    write_entry(db, seq, &Entry::forged(seq)).await;
                }
                from
            }
            Tamper::RewriteLeafHash(i) => {
                flip_leaf_hash(db, i).await;
                i
            }
            Tamper::RewriteUpperHash(k) => {
                let tile = db
                    .conn
                    .query_one(
                        "SELECT hashes FROM log_tiles WHERE level = 1 AND idx = 0",
                        &[],
                    )
                    .await[0]
                    .blob();
                let mut forged = tile;
                forged[k as usize * 32 + 7] ^= 0x80;
                set_tile(db, 1, 0, forged).await;
                256 * k
            }
            Tamper::DeleteTile(k) => {
                let gone = exec(db, "DELETE FROM log_tiles WHERE level = 0 AND idx = ?", k).await;
                assert_eq!(gone, 1);
                256 * k
            }
            Tamper::ChangeCaller(i) => {
                let e = read_entry(db, i).await;
                let other = if e.caller == "avim" { "ind" } else { "avim" };
                let changed = db
                    .conn
                    .execute(
                        "UPDATE access_log SET caller = ? WHERE seq = ?",
                        &[other.into(), i.into()],
                    )
                    .await;
                assert_eq!(changed, 1);
                i
            }
            Tamper::NullCaseColumn(from) => {
                let i: i64 = db
                    .conn
                    .query_one(
                        "SELECT MIN(seq) FROM access_log WHERE seq >= ? AND case_id IS NOT NULL",
                        &[from.into()],
                    )
                    .await[0]
                    .int();
                let changed =
                    exec(db, "UPDATE access_log SET case_id = NULL WHERE seq = ?", i).await;
                assert_eq!(changed, 1);
                i
            }
            Tamper::DeleteIndexRow(from) => {
                let i: i64 = db
                    .conn
                    .query_one(
                        "SELECT MIN(seq) FROM log_index_case WHERE seq >= ?",
                        &[from.into()],
                    )
                    .await[0]
                    .int();
                let gone = exec(db, "DELETE FROM log_index_case WHERE seq = ?", i).await;
                assert_eq!(gone, 1);
                i
            }
            Tamper::AddIndexRow(i) => {
                let added = db
                    .conn
                    .execute(
                        "INSERT INTO log_index_case (case_id, seq) VALUES (?, ?)",
                        &["0190f2a0-0000-7000-8000-00000000abcd".into(), i.into()],
                    )
                    .await;
                assert_eq!(added, 1);
                i
            }
            Tamper::StrayNode(i) => {
                let (start, mut hashes) = edge_row(db, i).await;
                let end = start + hashes.len() as i64 / 32;
                hashes.extend_from_slice(&[0u8; 32]);
                db.conn
                    .execute(
                        "UPDATE log_edge SET hashes = ? WHERE start = ?",
                        &[hashes.into(), start.into()],
                    )
                    .await;
                end
            }
            Tamper::RecordNotBlob(i) => {
                let changed = exec(db, "UPDATE access_log SET record = 42 WHERE seq = ?", i).await;
                assert_eq!(changed, 1);
                i
            }
        }
    }
}

/// The level-0 edge row holding entry `i`'s leaf hash: its start and
/// hashes.
async fn edge_row(db: &mut Db, i: i64) -> (i64, Vec<u8>) {
    let r = db
        .conn
        .query_one(
            "SELECT start, hashes FROM log_edge WHERE start <= ? ORDER BY start DESC LIMIT 1",
            &[i.into()],
        )
        .await;
    (r[0].int(), r[1].blob())
}

/// Replaces the stored leaf hash of entry `i` (in its full tile, or in the
/// edge row holding it) with a different one.
async fn flip_leaf_hash(db: &mut Db, i: i64) {
    let full = db
        .conn
        .query(
            "SELECT hashes FROM log_tiles WHERE level = 0 AND idx = ?",
            &[(i / 256).into()],
        )
        .await;
    if let Some(row) = full.first() {
        let mut forged = row[0].blob();
        forged[(i % 256) as usize * 32 + 7] ^= 0x80;
        set_tile(db, 0, i / 256, forged).await;
        return;
    }
    let (start, mut hashes) = edge_row(db, i).await;
    hashes[(i - start) as usize * 32 + 7] ^= 0x80;
    db.conn
        .execute(
            "UPDATE log_edge SET hashes = ? WHERE start = ?",
            &[hashes.into(), start.into()],
        )
        .await;
}

async fn set_tile(db: &mut Db, level: i64, idx: i64, hashes: Vec<u8>) {
    let changed = db
        .conn
        .execute(
            "UPDATE log_tiles SET hashes = ? WHERE level = ? AND idx = ?",
            &[hashes.into(), level.into(), idx.into()],
        )
        .await;
    assert_eq!(changed, 1);
}

/// Copies the pristine node, applies one edit to the copy's database, and
/// runs the verifier on it. Returns a description of what went wrong, if
/// anything did.
async fn caught(p: &Pristine, tamper: &Tamper) -> Result<(), String> {
    let copy = copy_node(p.dir.path()).await;
    let mut db = attacker(copy.path()).await;
    let expected = tamper.apply(&mut db, p.n).await;
    db.close().await;
    let v = verify_json(&copy.path().join("sluis.toml"), None);
    let name = tamper.name();
    if v.code != Some(2) || v.intact() {
        return Err(format!("{name}: not caught: {v}"));
    }
    if v.first_bad_index() != Some(expected as u64) {
        return Err(format!(
            "{name}: first bad index {:?}, expected {expected}; problems: {:#?}",
            v.first_bad_index(),
            v.problems()
        ));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_edit_of_the_log_is_caught_at_its_index() {
    let p = build_pristine().await;
    assert_eq!(p.n, PRISTINE_SIZE);
    assert!(
        p.checkpoints.len() >= 3,
        "several checkpoints were signed: {:?}",
        p.checkpoints
    );

    let v = verify_json(&p.config_path(), None);
    assert_eq!(v.code, Some(0), "{v}");
    assert!(v.intact(), "{v}");
    assert_eq!(v.json["entries"], p.n);
    assert_eq!(v.json["first_bad_index"], serde_json::Value::Null);

    let i = middle_index(&p, p.n / 2);
    let j = middle_index(&p, i + 7);
    let cut = middle_index(&p, p.n - 12);
    let cases = [
        Tamper::FlipRecordByte(i),
        Tamper::Delete(i),
        Tamper::Swap(i, j),
        Tamper::AppendForged,
        Tamper::TruncateAndAppend {
            from: cut,
            forged: p.n - cut + 5,
        },
        Tamper::RewriteLeafHash(i),
        Tamper::RewriteLeafHash(0),
        Tamper::RewriteLeafHash(p.n - 1),
        Tamper::ChangeCaller(i),
        Tamper::NullCaseColumn(i),
        Tamper::DeleteIndexRow(i),
        Tamper::AddIndexRow(j),
        Tamper::StrayNode(j),
    ];
    let sqlite_only = [Tamper::RecordNotBlob(i)];
    let cases = cases
        .iter()
        .chain(sqlite_only.iter().filter(|_| !on_postgres()));
    let mut failures = Vec::new();
    for case in cases {
        if let Err(e) = caught(&p, case).await {
            failures.push(e);
        }
    }
    assert!(
        failures.is_empty(),
        "checkpoints at {:?}, {} entries:\n{}",
        p.checkpoints,
        p.n,
        failures.join("\n")
    );
}

/// Past two full hash tiles (C2SP tlog-tiles: 256 leaf hashes each) and
/// into a third, so that level 0 has full tiles and a growing edge, and
/// tile level 1 a hash per full tile: a change to any of them is found at
/// the first entry it covers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_edit_of_a_hash_tile_is_caught_at_its_index() {
    let p = build_log(2 * 256 + 21).await;
    let v = verify_json(&p.config_path(), None);
    assert!(v.intact(), "{v}");
    let mut db = Db::of_node(p.dir.path()).await;
    let tiles = db
        .conn
        .query("SELECT level, idx FROM log_tiles ORDER BY level, idx", &[])
        .await
        .iter()
        .map(|r| (r[0].int(), r[1].int()))
        .collect::<Vec<_>>();
    db.close().await;
    assert_eq!(
        tiles,
        vec![(0, 0), (0, 1), (1, 0)],
        "two full tiles and one above them"
    );
    // Read natively, as the tile API serves them: full tiles, the partial
    // edge of level 0 from its edge rows, the level-1 tile with a hash per
    // full tile below it, nothing beyond.
    let (store, _) = Store::open(&database_url_of(p.dir.path()), &Default::default(), false)
        .await
        .unwrap();
    let width = |t: Option<Vec<u8>>| t.map(|b| b.len() / 32);
    assert_eq!(width(store.hash_tile(0, 1).await.unwrap()), Some(256));
    assert_eq!(width(store.hash_tile(0, 2).await.unwrap()), Some(21));
    assert_eq!(width(store.hash_tile(1, 0).await.unwrap()), Some(2));
    assert_eq!(store.hash_tile(0, 3).await.unwrap(), None);
    store.close().await;
    let cases = [
        Tamper::RewriteLeafHash(3),
        Tamper::RewriteLeafHash(256 + 200),
        Tamper::RewriteLeafHash(2 * 256 + 10),
        Tamper::RewriteUpperHash(0),
        Tamper::RewriteUpperHash(1),
        Tamper::DeleteTile(1),
        Tamper::FlipRecordByte(300),
    ];
    let mut failures = Vec::new();
    for case in &cases {
        if let Err(e) = caught(&p, case).await {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_signed_entries_is_caught() {
    let p = build_pristine().await;
    // Cut below the newest checkpoint, append nothing.
    let cut = middle_index(&p, p.n - 10);
    let copy = copy_node(p.dir.path()).await;
    let mut db = attacker(copy.path()).await;
    exec(&mut db, "DELETE FROM access_log WHERE seq >= ?", cut).await;
    db.close().await;
    let v = verify_json(&copy.path().join("sluis.toml"), None);
    assert_eq!(v.code, Some(2), "{v}");
    assert!(!v.intact());
    let first = v.first_bad_index().expect("an index");
    assert!(first <= cut as u64, "first bad index {first} > cut {cut}");
    assert!(
        v.problems().iter().any(|p| p.contains("removed")),
        "{:#?}",
        v.problems()
    );

    // A careful attacker also removes the tree nodes and the checkpoints
    // past the cut: the database is then consistent with itself, and only a
    // checkpoint saved elsewhere shows that entries are gone.
    let copy = copy_node(p.dir.path()).await;
    let mut db = attacker(copy.path()).await;
    exec(&mut db, "DELETE FROM access_log WHERE seq >= ?", cut).await;
    // The edge rows past the cut go; the row holding the cut keeps the
    // hashes before it.
    let (start, hashes) = edge_row(&mut db, cut).await;
    exec(&mut db, "DELETE FROM log_edge WHERE start >= ?", start).await;
    if start < cut {
        db.conn
            .execute(
                "INSERT INTO log_edge (start, hashes) VALUES (?, ?)",
                &[
                    start.into(),
                    hashes[..(cut - start) as usize * 32].to_vec().into(),
                ],
            )
            .await;
    }
    exec(&mut db, "DELETE FROM checkpoints WHERE size > ?", cut).await;
    db.close().await;
    let config = copy.path().join("sluis.toml");
    let v = verify_json(&config, Some(&p.saved_note));
    assert_eq!(v.code, Some(2), "{v}");
    assert!(!v.intact());
    assert_eq!(v.first_bad_index(), Some(cut as u64), "{v}");
    assert!(
        v.problems()
            .iter()
            .any(|p| p.contains("trusted checkpoint")),
        "{:#?}",
        v.problems()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_rebuilt_and_resigned_with_the_key_is_caught_by_a_saved_checkpoint() {
    let p = build_pristine().await;

    // The saved checkpoint holds for the real log.
    let v = verify_json(&p.config_path(), Some(&p.saved_note));
    assert_eq!(v.code, Some(0), "{v}");
    assert!(v.intact(), "{v}");
    assert_eq!(v.json["trusted_checkpoint"], p.n);
    let human = run_verify(&p.config_path(), Some(&p.saved_note), false);
    assert_eq!(human.code, Some(0), "{human}");
    assert!(human.stdout.contains("log intact"), "{human}");

    // Someone with the node's folder, keys included, starts over: a new
    // database, other requests, checkpoints signed with the same key.
    let copy = copy_folder(p.dir.path());
    for f in ["sluis.db", "sluis.db-wal", "sluis.db-shm"] {
        let _ = std::fs::remove_file(copy.path().join(f));
    }
    if let Some(admin) = postgres_admin_url() {
        set_database(copy.path(), &fresh_postgres_database(&admin).await);
    }
    let config_path = copy.path().join("sluis.toml");
    let mut config = Config::load(&config_path).unwrap();
    config.node.checkpoint_interval_ms = checkpoint_ms();
    let node = Node::start(&config).await.expect("start the rebuilt node");
    let rebuilt = TestNode {
        dir: copy,
        config,
        node,
    };
    traffic(&rebuilt, p.n + 5).await;
    let (m, _) = wait_until_signed(&rebuilt.node.store).await;
    assert!(m >= p.n);
    let TestNode {
        dir: copy, node, ..
    } = rebuilt;
    node.shutdown().await.unwrap();

    // On its own, the rebuilt log is consistent and signed by the node's key.
    let v = verify_json(&config_path, None);
    assert_eq!(v.code, Some(0), "{v}");
    assert!(v.intact(), "{v}");
    // Against the checkpoint saved from the real log, it is not.
    let v = verify_json(&config_path, Some(&p.saved_note));
    assert_ne!(v.code, Some(0), "{v}");
    assert!(!v.intact(), "{v}");
    assert!(
        v.problems()
            .iter()
            .any(|p| p.contains("trusted checkpoint")),
        "{:#?}",
        v.problems()
    );
    drop(copy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_human_report_names_the_first_bad_index() {
    let p = build_pristine().await;
    let human = run_verify(&p.config_path(), None, false);
    assert_eq!(human.code, Some(0), "{human}");
    assert!(
        human
            .stdout
            .contains(&format!("log intact: {} entries", p.n)),
        "{human}"
    );

    let i = middle_index(&p, p.n / 3);
    let copy = copy_node(p.dir.path()).await;
    let mut db = attacker(copy.path()).await;
    Tamper::ChangeCaller(i).apply(&mut db, p.n).await;
    db.close().await;
    let human = run_verify(&copy.path().join("sluis.toml"), None, false);
    assert_eq!(human.code, Some(2), "{human}");
    assert!(
        human.stdout.contains(&format!("first bad index {i}")),
        "{human}"
    );
    assert!(human.stdout.contains("LOG NOT INTACT"), "{human}");
}
