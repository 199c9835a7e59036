//! Three `sluis serve` replicas on one PostgreSQL database, under concurrent
//! load from several participants; one is killed with SIGKILL midway.
//! Afterwards every acknowledged request has exactly one access record, the
//! log is one tree without gaps or forks (`sluis audit verify` passes and the
//! tree size equals the number of records), and a consent withdrawn through
//! one replica is honoured by another on the very next request.
//!
//! PostgreSQL only: with SQLite a node owns its file, so there are no replicas.

mod common;

use std::collections::HashSet;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{request_id, require_postgres, use_test_database};
use sluis::net::client::{self, ClientPem};
use sluis::rpc::Clients;
use sluis::rpc::proto::v1 as pb;
use sqlx::{Connection, Row};
use tonic::Request;

const GEMEENTE: &str = "gemeente-utrecht";
const NGO: &str = "ngo-vluchtelingenwerk";

fn sluis() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sluis"))
}

struct Replica {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `sluis serve` with a copy of the node's config listening on its
/// own port; returns once an mTLS client gets through.
async fn start_replica(dir: &Path, n: usize) -> Replica {
    let addr: SocketAddr = format!("127.0.0.1:{}", common::free_port())
        .parse()
        .unwrap();
    let text = std::fs::read_to_string(dir.join("sluis.toml")).unwrap();
    let listen = text
        .lines()
        .find(|l| l.starts_with("listen = "))
        .unwrap()
        .to_string();
    // The node's own address: the first `listen`; each replica's probes
    // listener on a port of its own.
    let mut section = String::new();
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with('[') {
                section = l.to_string();
            }
            if section == "[probes]" && l.starts_with("listen = ") {
                "listen = \"127.0.0.1:0\"\n".to_string()
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let text = text
        .replacen(&listen, &format!("listen = \"{addr}\""), 1)
        .replace(
            "checkpoint_interval_ms = 1000",
            "checkpoint_interval_ms = 100",
        );
    let config = dir.join(format!("replica-{n}.toml"));
    std::fs::write(&config, text).unwrap();
    let log = dir.join(format!("replica-{n}.log"));
    let child = sluis()
        .args(["serve", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut r = Replica { child, addr, log };
    for _ in 0..400 {
        if let Some(status) = r.child.try_wait().unwrap() {
            panic!(
                "replica {n} exited with {status}:\n{}",
                std::fs::read_to_string(&r.log).unwrap_or_default()
            );
        }
        if let Ok(Ok(mut c)) =
            tokio::time::timeout(Duration::from_secs(2), clients(dir, addr, GEMEENTE)).await
            && c.cases
                .find_cases(pb::FindCasesRequest {
                    scope: pb::find_cases_request::Scope::Own as i32,
                    ..Default::default()
                })
                .await
                .is_ok()
        {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "replica {n} did not serve:\n{}",
        std::fs::read_to_string(&r.log).unwrap_or_default()
    );
}

async fn clients(
    dir: &Path,
    addr: SocketAddr,
    who: &str,
) -> Result<Clients, tonic::transport::Error> {
    let read = |p: PathBuf| std::fs::read_to_string(p).unwrap();
    let pki = dir.join("pki");
    let pem = ClientPem {
        ca: read(pki.join("ca.pem")),
        identity: Some((
            read(pki.join(format!("clients/{who}.pem"))),
            read(pki.join(format!("clients/{who}.key"))),
        )),
    };
    Ok(Clients::new(
        client::connect(addr, "localhost", &pem).await?,
    ))
}

fn actor<T>(msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut()
        .insert("x-sluis-actor", "mw-0042".parse().unwrap());
    r
}

fn case(n: usize) -> pb::CaseData {
    pb::CaseData {
        identity: Some(pb::Identity {
            name: format!("Replica Test {n}"),
            ..Default::default()
        }),
        shelter: Some(pb::Shelter {
            location: "LVV Oost".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Tests that need PostgreSQL: ignored (visibly) in a plain `cargo test`,
/// run by the PostgreSQL pass (`-- --ignored postgres_only`).
mod postgres_only {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[ignore = "needs PostgreSQL: run with SLUIS_TEST_BACKEND=postgres and `-- --ignored postgres_only` (as .ci/run does)"]
    async fn three_replicas_keep_one_log_through_a_sigkill() {
        super::three_replicas_keep_one_log_through_a_sigkill().await;
    }
}

async fn three_replicas_keep_one_log_through_a_sigkill() {
    require_postgres();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let out = sluis()
        .args(["init", "--dev", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    use_test_database(&dir).await;
    let out = sluis()
        .args(["migrate", "--config"])
        .arg(dir.join("sluis.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut replicas = Vec::new();
    for n in 0..3 {
        replicas.push(start_replica(&dir, n).await);
    }
    let addrs: Vec<SocketAddr> = replicas.iter().map(|r| r.addr).collect();

    // A consented case, then withdrawal through replica 0 is honoured by
    // replica 1 on the very next request.
    let mut g0 = clients(&dir, addrs[0], GEMEENTE).await.unwrap();
    let reg = g0
        .cases
        .register_case(actor(pb::RegisterCaseRequest {
            request_id: String::new(),
            data: Some(case(0)),
        }))
        .await
        .unwrap()
        .into_inner();
    let consent = g0
        .consents
        .grant_consent(actor(pb::GrantConsentRequest {
            request_id: String::new(),
            case_id: reg.case_id.clone(),
            recipients: vec![pb::Recipient {
                recipient: Some(pb::recipient::Recipient::Participant(NGO.into())),
            }],
            categories: vec![pb::Category::Shelter as i32],
            purposes: vec!["shelter".into()],
            evidence_ref: "DMS-9".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .consent
        .unwrap();
    let mut ngo1 = clients(&dir, addrs[1], NGO).await.unwrap();
    let read = |id: &str| pb::GetCaseRequest {
        subject: Some(pb::get_case_request::Subject::CaseId(id.into())),
        purpose: "shelter".into(),
        categories: vec![],
        emergency_justification: String::new(),
    };
    assert_eq!(
        ngo1.cases
            .get_case(read(&reg.case_id))
            .await
            .unwrap()
            .into_inner()
            .released
            .len(),
        1
    );
    g0.consents
        .withdraw_consent(actor(pb::WithdrawConsentRequest {
            request_id: String::new(),
            consent_id: consent.consent_id.clone(),
            note: String::new(),
        }))
        .await
        .unwrap();
    let after = ngo1
        .cases
        .get_case(read(&reg.case_id))
        .await
        .unwrap()
        .into_inner();
    assert!(
        after.released.is_empty(),
        "replica 1 honours the withdrawal made through replica 0"
    );

    // Load: several participants on every replica.
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (t, who) in [
        GEMEENTE, "dtv", NGO, "ind", GEMEENTE, "avim", "dtv", NGO, "ind",
    ]
    .into_iter()
    .enumerate()
    {
        let addr = addrs[t % 3];
        let dir = dir.clone();
        let acked = acked.clone();
        let stop = stop.clone();
        let case_id = reg.case_id.clone();
        tasks.push(tokio::spawn(async move {
            let Ok(mut c) = clients(&dir, addr, who).await else {
                return;
            };
            let deadline = Instant::now() + Duration::from_secs(8);
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed)
                && Instant::now() < deadline
                && i < 400
            {
                i += 1;
                let id = if who == GEMEENTE {
                    c.cases
                        .register_case(actor(pb::RegisterCaseRequest {
                            request_id: String::new(),
                            data: Some(case(t * 1000 + i)),
                        }))
                        .await
                        .map(|r| request_id(&r))
                } else {
                    c.cases
                        .get_case(read(&case_id))
                        .await
                        .map(|r| request_id(&r))
                };
                match id {
                    Ok(id) => acked.lock().unwrap().push(id),
                    // The killed replica's clients stop; the others go on.
                    Err(_) => return,
                }
            }
        }));
    }
    // Kill replica 2 midway through.
    for _ in 0..200 {
        if acked.lock().unwrap().len() >= 300 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    replicas[2].child.kill().unwrap();
    replicas[2].child.wait().unwrap();
    let at_kill = acked.lock().unwrap().len();
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let acked: Vec<String> = acked.lock().unwrap().clone();
    assert!(
        at_kill >= 100,
        "load ran before the kill ({at_kill} answered)"
    );
    assert!(
        acked.len() > at_kill,
        "the surviving replicas went on answering"
    );

    // Stop the survivors cleanly (they sign the tail).
    for r in replicas.iter_mut().take(2) {
        let _ = Command::new("kill").arg(r.child.id().to_string()).status();
        let _ = r.child.wait();
    }

    // One log: every acknowledged request exactly once, positions without gaps.
    let text = std::fs::read_to_string(dir.join("sluis.toml")).unwrap();
    let url = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("database = \"")
                .and_then(|r| r.strip_suffix('"'))
        })
        .unwrap()
        .to_string();
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let rows = sqlx::query("SELECT seq, request_id FROM access_log ORDER BY seq")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let seqs: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(
        seqs,
        (0..rows.len() as i64).collect::<Vec<_>>(),
        "no gaps, no duplicates"
    );
    let mut ids: Vec<String> = rows.iter().map(|r| r.get(1)).collect();
    ids.sort();
    for id in &acked {
        assert!(
            ids.binary_search(id).is_ok(),
            "acknowledged request {id} is in the log"
        );
    }
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "each request recorded once");
    // Leaf hashes: 256 in each full level-0 tile, the rest in edge rows.
    let level0: i64 = sqlx::query_scalar(
        "SELECT (SELECT COALESCE(SUM(length(hashes)), 0) FROM log_tiles WHERE level = 0)
              + (SELECT COALESCE(SUM(length(hashes)), 0) FROM log_edge)",
    )
    .fetch_one(&mut conn)
    .await
    .map(|bytes: i64| bytes / 32)
    .unwrap();
    assert_eq!(
        level0,
        rows.len() as i64,
        "tree size equals the number of records"
    );
    conn.close().await.unwrap();

    let out = sluis()
        .args(["audit", "verify", "--json", "--config"])
        .arg(dir.join("sluis.toml"))
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(out.status.success(), "verify: {report}");
    assert_eq!(report["entries"].as_u64().unwrap(), rows.len() as u64);
    eprintln!(
        "{} requests acknowledged ({at_kill} before the kill), {} records in one verified log",
        acked.len(),
        rows.len()
    );
}
