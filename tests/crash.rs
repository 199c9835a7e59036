//! A node under concurrent load is killed with SIGKILL — once, and 20
//! times in a row at random moments. After a restart, every request that
//! got an answer has its record in the access log, the log has no gaps and
//! verifies (`sluis audit verify`, `tlog::verify::verify_log`), and no case
//! or consent whose write was answered is lost.
//!
//! The node is the real binary (`sluis serve`) in a child process, the load
//! real gRPC over mTLS from several participants, the log a real SQLite file
//! or, with `SLUIS_TEST_BACKEND=postgres`, a real PostgreSQL database.

mod common;

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Database, connect_database, database_url_of, use_test_database};
use sluis::rpc::Clients;
use sluis::rpc::REQUEST_ID_HEADER;
use sluis::rpc::proto::v1 as pb;
use tonic::metadata::MetadataMap;
use tonic::{Code, Request, Response, Status};

const GEMEENTE: &str = "gemeente-utrecht";
/// Checkpoints often, so the log killed mid-load has several.
const CHECKPOINT_MS: u64 = 50;

fn sluis() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sluis"))
}

/// A stopped node directory made by `sluis init`, with its own port, on the
/// test database (its SQLite file, or a fresh PostgreSQL database).
struct NodeDir {
    dir: tempfile::TempDir,
    addr: SocketAddr,
    /// Number of times the node was started, for the log file names.
    runs: usize,
}

impl NodeDir {
    async fn init(checkpoint_ms: u64) -> NodeDir {
        let dir = tempfile::tempdir().unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", common::free_port())
            .parse()
            .unwrap();
        let out = sluis()
            .args(["init", "--dev", "--dir"])
            .arg(dir.path())
            .args(["--listen", &addr.to_string()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "sluis init: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let config = dir.path().join("sluis.toml");
        let text = std::fs::read_to_string(&config).unwrap();
        assert!(text.contains(&format!("listen = \"{addr}\"")));
        let text = text.replace(
            "checkpoint_interval_ms = 1000",
            &format!("checkpoint_interval_ms = {checkpoint_ms}"),
        );
        assert!(text.contains(&format!("checkpoint_interval_ms = {checkpoint_ms}")));
        std::fs::write(&config, text).unwrap();
        use_test_database(dir.path()).await;
        NodeDir { dir, addr, runs: 0 }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn config(&self) -> PathBuf {
        self.path().join("sluis.toml")
    }

    /// `sluis serve` in a child process; returns once it completes an mTLS
    /// handshake (a bare TCP probe would be recorded as a failed
    /// handshake), or panics with its stderr if it exits or never does.
    async fn serve(&mut self) -> Served {
        self.runs += 1;
        let stderr_path = self.path().join(format!("serve-{}.log", self.runs));
        let child = sluis()
            .args(["serve", "--config"])
            .arg(self.config())
            .env("SLUIS_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&stderr_path).unwrap())
            .spawn()
            .expect("spawn sluis serve");
        let mut served = Served {
            child,
            stderr: stderr_path,
        };
        for _ in 0..400 {
            if let Some(status) = served.child.try_wait().unwrap() {
                // Between two runs another process may take the node's
                // port (an ephemeral client port of a test beside this
                // one): the node moves to a free one, as an operator would.
                if served.log().contains("Address already in use") && self.runs < 20 {
                    self.move_to_free_ports();
                    return Box::pin(self.serve()).await;
                }
                panic!(
                    "sluis serve exited with {status} before serving:\n{}",
                    served.log()
                );
            }
            let ready = tokio::time::timeout(Duration::from_secs(2), self.client(GEMEENTE));
            if let Ok(Ok(_)) = ready.await {
                return served;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("sluis serve did not accept connections:\n{}", served.log());
    }

    /// Rewrites the node's listen addresses (the gateway's and the probes')
    /// to ports free now.
    fn move_to_free_ports(&mut self) {
        let config = self.config();
        let text = std::fs::read_to_string(&config).unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", common::free_port())
            .parse()
            .unwrap();
        let probes = format!("127.0.0.1:{}", common::free_port());
        let text: String = text
            .lines()
            .map(|l| {
                if l.starts_with("listen = \"") && l.contains(&self.addr.to_string()) {
                    format!("listen = \"{addr}\"")
                } else if l.starts_with("listen = \"") {
                    format!("listen = \"{probes}\"")
                } else {
                    l.to_string()
                }
            })
            .map(|l| l + "\n")
            .collect();
        std::fs::write(&config, text).unwrap();
        self.addr = addr;
    }

    async fn client(&self, participant: &str) -> Result<Clients, tonic::transport::Error> {
        Ok(Clients::new(
            common::channel_as(self.addr, self.path(), participant).await?,
        ))
    }

    /// A connection of the test's own to the node's database.
    async fn database(&self) -> Database {
        connect_database(&database_url_of(self.path())).await
    }

    /// Every (seq, request_id) of the access log, in order.
    async fn log(&self) -> Vec<(i64, String)> {
        let mut conn = self.database().await;
        let rows = conn
            .query("SELECT seq, request_id FROM access_log ORDER BY seq", &[])
            .await;
        conn.close().await;
        rows.iter().map(|r| (r[0].int(), r[1].text())).collect()
    }

    /// The size of the latest signed checkpoint.
    async fn signed_size(&self) -> Option<i64> {
        let mut conn = self.database().await;
        let size = conn
            .query_one("SELECT MAX(size) FROM checkpoints", &[])
            .await[0]
            .opt_int();
        conn.close().await;
        size
    }

    fn verify(&self) -> (Option<i32>, serde_json::Value, String) {
        let out = sluis()
            .args(["audit", "verify", "--config"])
            .arg(self.config())
            .arg("--json")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let json = serde_json::from_str(stdout.trim()).unwrap_or(serde_json::Value::Null);
        let text = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
        (out.status.code(), json, text)
    }
}

/// A running `sluis serve`.
struct Served {
    child: Child,
    stderr: PathBuf,
}

impl Served {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// SIGKILL: no shutdown, no final checkpoint, nothing flushed.
    fn kill_9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, and waits (bounded) for a clean exit.
    fn stop(mut self) {
        let status = Command::new("kill")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        for _ in 0..400 {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "sluis serve exited with {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        panic!("sluis serve did not stop on SIGTERM:\n{}", self.log());
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        // Only reached on a failed assertion: leave no node running.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn with_actor<T>(msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut()
        .insert("x-sluis-actor", "mw-0042".parse().unwrap());
    r
}

fn request_id(metadata: &MetadataMap) -> Option<String> {
    Some(metadata.get(REQUEST_ID_HEADER)?.to_str().ok()?.to_string())
}

fn new_case() -> pb::CaseData {
    pb::CaseData {
        identity: Some(pb::Identity {
            name: "Test Persoon".into(),
            date_of_birth: "1990-01-01".into(),
            nationality: "ERI".into(),
            v_number: "1234567890".into(),
            bsn: String::new(),
        }),
        shelter: Some(pb::Shelter {
            location: "LVV Oost".into(),
            since: "2026-01-01".into(),
            until: String::new(),
            notes: String::new(),
        }),
        perspective: Some(pb::Perspective {
            kind: pb::PerspectiveKind::Undetermined as i32,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn get(case_id: &str, purpose: &str) -> pb::GetCaseRequest {
    pb::GetCaseRequest {
        subject: Some(pb::get_case_request::Subject::CaseId(case_id.into())),
        purpose: purpose.into(),
        categories: vec![],
        emergency_justification: String::new(),
    }
}

/// What the load tasks share: answered request ids and registered cases.
#[derive(Default)]
struct Shared {
    acked: Mutex<Vec<String>>,
    cases: Mutex<Vec<String>>,
    /// Consents whose grant was answered.
    consents: Mutex<Vec<String>>,
}

/// Most requests per task, so the load ends by itself even if the kill
/// comes late.
const MAX_REQUESTS_PER_TASK: usize = 5_000;
/// A request that takes longer than this counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The request id of an answer, if the node gave one: a success, or a
/// refusal the node recorded before answering. None when the node is gone
/// (transport error, timeout) or could not record the request.
fn answered<T>(
    result: Result<Result<Response<T>, Status>, tokio::time::error::Elapsed>,
) -> Option<(String, Option<T>)> {
    match result {
        Ok(Ok(r)) => {
            let id = request_id(r.metadata())?;
            Some((id, Some(r.into_inner())))
        }
        Ok(Err(s)) if !matches!(s.code(), Code::Unavailable | Code::Internal | Code::Unknown) => {
            Some((request_id(s.metadata())?, None))
        }
        _ => None,
    }
}

/// One load task: a participant's back-end calling as fast as it can
/// until the node stops answering. The municipality registers cases and
/// grants consent; the others read them (some are refused: no consent, or
/// a role that never sees a person).
async fn load(
    mut c: Clients,
    participant: &'static str,
    purpose: &'static str,
    shared: Arc<Shared>,
) {
    for n in 0..MAX_REQUESTS_PER_TASK {
        let answer = if participant == GEMEENTE {
            let last_case = shared.cases.lock().unwrap().last().cloned();
            match last_case {
                Some(case_id) if n % 2 == 1 => {
                    let r = c
                        .consents
                        .grant_consent(with_actor(pb::GrantConsentRequest {
                            request_id: String::new(),
                            case_id,
                            recipients: vec![pb::Recipient {
                                recipient: Some(pb::recipient::Recipient::Role(
                                    pb::Role::Dtv as i32,
                                )),
                            }],
                            categories: vec![pb::Category::Perspective as i32],
                            purposes: vec!["return".into()],
                            valid_from: None,
                            valid_until: None,
                            evidence_ref: "DMS-1".into(),
                        }));
                    answered(tokio::time::timeout(REQUEST_TIMEOUT, r).await).map(|(id, r)| {
                        if let Some(c) = r.and_then(|r| r.consent) {
                            shared.consents.lock().unwrap().push(c.consent_id);
                        }
                        id
                    })
                }
                _ => {
                    let r = c.cases.register_case(with_actor(pb::RegisterCaseRequest {
                        request_id: String::new(),
                        data: Some(new_case()),
                    }));
                    answered(tokio::time::timeout(REQUEST_TIMEOUT, r).await).map(|(id, r)| {
                        if let Some(r) = r {
                            shared.cases.lock().unwrap().push(r.case_id);
                        }
                        id
                    })
                }
            }
        } else {
            let case_id = {
                let cases = shared.cases.lock().unwrap();
                (!cases.is_empty()).then(|| cases[n % cases.len()].clone())
            };
            let Some(case_id) = case_id else {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            };
            let r = c.cases.get_case(get(&case_id, purpose));
            answered(tokio::time::timeout(REQUEST_TIMEOUT, r).await).map(|(id, _)| id)
        };
        match answer {
            Some(id) => shared.acked.lock().unwrap().push(id),
            // The node is gone: stop.
            None => return,
        }
    }
}

/// SIGKILL, then waits (bounded) for the load tasks to notice and stop.
async fn kill_under_load(served: Served, tasks: Vec<tokio::task::JoinHandle<()>>) {
    served.kill_9();
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .expect("a load task did not stop after the node died")
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answered_request_survives_sigkill_and_the_log_verifies() {
    let mut node = NodeDir::init(CHECKPOINT_MS).await;
    let served = node.serve().await;

    // Eight back-ends, each on its own mTLS connection.
    let parties: [(&'static str, &'static str); 8] = [
        (GEMEENTE, ""),
        (GEMEENTE, ""),
        ("dtv", "return"),
        ("dtv", "return"),
        ("ind", "legalisation"),
        ("ngo-vluchtelingenwerk", "shelter"),
        ("avim", "return"),
        ("monitor-jenv", "monitoring"),
    ];
    let shared = Arc::new(Shared::default());
    let mut tasks = Vec::new();
    for (participant, purpose) in parties {
        let c = node.client(participant).await.unwrap_or_else(|e| {
            panic!(
                "connect as {participant}: {e}\nthe node's log:\n{}",
                served.log()
            )
        });
        tasks.push(tokio::spawn(load(c, participant, purpose, shared.clone())));
    }

    // Let the load run until enough was answered (or a bounded time), then
    // kill the node in the middle of it.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        if shared.acked.lock().unwrap().len() >= 1_000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before_kill = shared.acked.lock().unwrap().len();
    let node_log = served.log();
    // Every back-end was still being served when the kill came: none was
    // turned away (e.g. by a refused log write) while the node was up.
    let stopped_early = tasks.iter().filter(|t| t.is_finished()).count();
    assert_eq!(
        stopped_early, 0,
        "load tasks stopped before the kill; node log:\n{node_log}"
    );
    kill_under_load(served, tasks).await;
    let acked = shared.acked.lock().unwrap().clone();
    assert!(
        before_kill > 0 && acked.len() >= before_kill,
        "the load ran: {before_kill} answered before the kill; node log:\n{node_log}"
    );

    // The node must start again on the log as the crash left it: that
    // means the stored tree matches the last signed checkpoint.
    let served = node.serve().await;
    let mut gemeente = node.client(GEMEENTE).await.expect("connect after restart");
    let r = gemeente
        .cases
        .register_case(with_actor(pb::RegisterCaseRequest {
            request_id: String::new(),
            data: Some(new_case()),
        }))
        .await
        .expect("the restarted node answers");
    let after_restart = request_id(r.metadata()).expect("a request id");
    // The restarted node signs the tail the crash left unsigned.
    let mut signed = false;
    for _ in 0..200 {
        let n = node.log().await.len() as i64;
        if node.signed_size().await == Some(n) {
            signed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(CHECKPOINT_MS)).await;
    }
    assert!(signed, "no checkpoint covers the recovered log");
    drop(gemeente);
    served.stop();

    let log = node.log().await;
    let answered: Vec<String> = acked.iter().cloned().chain([after_restart]).collect();
    assert_recorded_once(&log, &answered, "after the crash");
    // A request in flight at the kill may be in the log without an answer.
    let unanswered = log.len().saturating_sub(acked.len() + 1);

    let (code, json, text) = node.verify();
    assert_eq!(code, Some(0), "sluis audit verify after the crash: {text}");
    assert_eq!(json["intact"], true, "{text}");
    assert_eq!(json["entries"], log.len(), "{text}");
    println!(
        "{} requests answered before SIGKILL ({} when the kill was sent), all {} in the log of {} entries \
         ({} recorded but unanswered), {} checkpoints; log verifies",
        acked.len(),
        before_kill,
        acked.len(),
        log.len(),
        unanswered,
        json["checkpoints"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_signs_the_unsigned_tail() {
    // One checkpoint an hour: only the first batch (at start) and the stop
    // itself get one.
    let mut node = NodeDir::init(3_600_000).await;
    let served = node.serve().await;
    let mut gemeente = node.client(GEMEENTE).await.expect("connect");
    for _ in 0..5 {
        gemeente
            .cases
            .register_case(with_actor(pb::RegisterCaseRequest {
                request_id: String::new(),
                data: Some(new_case()),
            }))
            .await
            .expect("register");
    }
    drop(gemeente);
    served.stop();
    let n = node.log().await.len() as i64;
    assert_eq!(n, 5);
    assert_eq!(
        node.signed_size().await,
        Some(n),
        "a node that stops cleanly signs a checkpoint over every entry it wrote"
    );
}

/// The log's positions have no gaps, and every answered request has
/// exactly one record in it.
fn assert_recorded_once(log: &[(i64, String)], answered: &[String], when: &str) {
    for (i, (seq, _)) in log.iter().enumerate() {
        assert_eq!(*seq, i as i64, "{when}: the log's positions have no gaps");
    }
    let mut count = std::collections::HashMap::new();
    for (_, id) in log {
        *count.entry(id.as_str()).or_insert(0usize) += 1;
    }
    let missing: Vec<&String> = answered
        .iter()
        .filter(|id| !count.contains_key(id.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{when}: {} of {} answered requests have no access record: {:?}",
        missing.len(),
        answered.len(),
        &missing[..missing.len().min(5)]
    );
    let doubled: Vec<_> = count.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        doubled.is_empty(),
        "{when}: records written twice: {doubled:?}"
    );
}

/// How many times the crash loop kills the node.
const CRASH_ROUNDS: usize = 20;

/// A small deterministic generator for the kill moments (xorshift64*),
/// seeded from the clock; the seed is printed so a failing run can be
/// repeated with `SLUIS_CRASH_SEED`.
struct Moments(u64);

impl Moments {
    fn new() -> (Moments, u64) {
        let seed = std::env::var("SLUIS_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            })
            | 1;
        (Moments(seed), seed)
    }

    /// Uniform in `lo..hi` milliseconds.
    fn between(&mut self, lo: u64, hi: u64) -> Duration {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let r = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        Duration::from_millis(lo + r % (hi - lo))
    }
}

/// The log as the crash left it, checked with the node down: every
/// answered request has exactly one record, positions have no gaps, and
/// `verify_log` recomputes every leaf, node and checkpoint and finds it
/// intact. Returns the number of entries.
async fn check_crashed_log(node: &NodeDir, acked: &[String], round: usize) -> usize {
    let log = node.log().await;
    assert_recorded_once(&log, acked, &format!("round {round}"));
    let config = sluis::config::Config::load(&node.config()).unwrap();
    let report = common::verify_log_of(&config).await;
    assert!(
        report.intact(),
        "round {round}: the log does not verify after SIGKILL: {:?}",
        report.first_problem()
    );
    log.len()
}

/// Every case and consent whose write was answered is there after the
/// restart: the owner reads the case back and lists the consent.
async fn check_writes_kept(node: &NodeDir, cases: &[String], consents: &[String], round: usize) {
    let mut owner = node.client(GEMEENTE).await.expect("connect after restart");
    for case_id in cases {
        let r = owner
            .cases
            .get_case(with_actor(get(case_id, "case_consultation")))
            .await;
        assert!(
            r.is_ok(),
            "round {round}: case {case_id} was registered (answered), and is gone after SIGKILL: {r:?}"
        );
    }
    let mut listed = std::collections::HashSet::new();
    for case_id in cases {
        let r = owner
            .consents
            .list_consents(with_actor(pb::ListConsentsRequest {
                case_id: case_id.clone(),
            }))
            .await
            .expect("list consents");
        listed.extend(r.into_inner().consents.into_iter().map(|c| c.consent_id));
    }
    let lost: Vec<&String> = consents.iter().filter(|c| !listed.contains(*c)).collect();
    assert!(
        lost.is_empty(),
        "round {round}: {} answered consents are gone after SIGKILL: {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
}

/// 20 × SIGKILL of `sluis serve` under mixed load (registrations, consents,
/// reads by five participants) at random moments. After each kill the log
/// verifies and holds every answered request once; after each restart no
/// answered case or consent is lost, and the node serves again. On SQLite,
/// and on PostgreSQL in the PostgreSQL pass (`SLUIS_TEST_BACKEND`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_sigkills_under_load_lose_nothing_answered() {
    let started = Instant::now();
    let (mut moments, seed) = Moments::new();
    println!("kill moments seeded with SLUIS_CRASH_SEED={seed}");
    let mut node = NodeDir::init(CHECKPOINT_MS).await;
    let mut acked: Vec<String> = Vec::new();
    let mut known_cases: Vec<String> = Vec::new();
    // The writes answered in the round before, checked after the restart.
    let mut round_cases: Vec<String> = Vec::new();
    let mut round_consents: Vec<String> = Vec::new();
    let parties: [(&'static str, &'static str); 6] = [
        (GEMEENTE, ""),
        (GEMEENTE, ""),
        ("dtv", "return"),
        ("ind", "legalisation"),
        ("ngo-vluchtelingenwerk", "shelter"),
        ("avim", "return"),
    ];
    let mut entries = 0;
    for round in 1..=CRASH_ROUNDS + 1 {
        let served = node.serve().await;
        check_writes_kept(&node, &round_cases, &round_consents, round - 1).await;
        if round > CRASH_ROUNDS {
            served.stop();
            break;
        }
        let shared = Arc::new(Shared::default());
        *shared.cases.lock().unwrap() = known_cases.clone();
        let mut tasks = Vec::new();
        for (participant, purpose) in parties {
            let c = node.client(participant).await.expect("connect");
            tasks.push(tokio::spawn(load(c, participant, purpose, shared.clone())));
        }
        // A random moment: early (mid-handshake, first batches) or later
        // (group commits and checkpoints under way).
        tokio::time::sleep(moments.between(20, 900)).await;
        kill_under_load(served, tasks).await;
        acked.extend(shared.acked.lock().unwrap().iter().cloned());
        let cases = shared.cases.lock().unwrap().clone();
        round_cases = cases[known_cases.len()..].to_vec();
        round_consents = shared.consents.lock().unwrap().clone();
        known_cases = cases;
        entries = check_crashed_log(&node, &acked, round).await;
    }
    let final_entries = check_crashed_log(&node, &acked, CRASH_ROUNDS + 1).await;
    assert!(final_entries >= entries);
    assert!(
        known_cases.len() >= CRASH_ROUNDS / 2,
        "the load registered too few cases to test anything: {}",
        known_cases.len()
    );
    println!(
        "{CRASH_ROUNDS} SIGKILLs in {:.1} s: {} answered requests all recorded, {} cases kept, log of {final_entries} entries verifies",
        started.elapsed().as_secs_f64(),
        acked.len(),
        known_cases.len()
    );
}
