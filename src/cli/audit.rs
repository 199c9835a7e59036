//! `sluis audit …`: the privacy officer's commands on a node's host. They
//! read the database directly and never write to it (the running node is
//! the log's only writer).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::config::Config;
use crate::gateway::vault::Keys;
use crate::gateway::{oversight, validate};
use crate::net::identity::Registry;
use crate::store::{LogFilter, Store};
use crate::tlog::AccessRecord;
use crate::tlog::checkpoint::Checkpoint;
use crate::tlog::note;
use crate::tlog::proof::{self, LeafRef};
use crate::tlog::verify;

/// What `sluis audit export` writes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExportFormat {
    Jsonl,
    Csv,
    /// Logboek Dataverwerkingen lines (`cli::ldv`).
    Ldv,
}

pub(crate) enum Command {
    /// A new privacy-officer key pair (`cli::ldv::officer_key`).
    OfficerKey {
        out: PathBuf,
    },
    /// Open one record's sealed data subject id (`cli::ldv::decrypt_subject`).
    DecryptSubject(crate::cli::ldv::Decrypt),
    Verify {
        trusted_checkpoint: Option<PathBuf>,
        key: Option<String>,
        json: bool,
    },
    Export {
        format: ExportFormat,
        since: Option<String>,
        until: Option<String>,
        out: Option<PathBuf>,
    },
    Checkpoint {
        json: bool,
    },
    Prove {
        request_id: String,
        json: bool,
    },
    Report {
        case_id: String,
        json: bool,
    },
}

struct Node {
    config: Config,
    store: Store,
}

/// The node's store, read-only, for commands outside this file.
pub(crate) async fn open_store(config_path: &Path) -> anyhow::Result<Store> {
    Ok(open(config_path).await?.store)
}

async fn open(config_path: &Path) -> anyhow::Result<Node> {
    let config = Config::load(config_path)
        .with_context(|| format!("no node at {} (use --config FILE)", config_path.display()))?;
    if let Ok(db) = config.sqlite_path()
        && !db.exists()
    {
        anyhow::bail!("the node's database {} does not exist", db.display());
    }
    // Read-only use: no migrations, a small pool.
    let settings = crate::store::PoolSettings {
        max_connections: 2,
        ..config.pool_settings()
    };
    let (store, _) = Store::open(&config.database_url()?, &settings, false).await?;
    Ok(Node { config, store })
}

fn own_verifier_key(config: &Config) -> anyhow::Result<String> {
    let keys = Keys::load(&config.path(&config.node.keys_dir))
        .context("cannot derive the verifier key from the node's signing key; pass --key")?;
    Ok(note::verifier_key(
        &config.node.name,
        &keys.signing_public_key(),
    ))
}

pub(crate) async fn run(config_path: &Path, command: Command) -> anyhow::Result<ExitCode> {
    // The officer's key commands need no database.
    let command = match command {
        Command::OfficerKey { out } => return crate::cli::ldv::officer_key(config_path, &out),
        Command::DecryptSubject(d) => {
            return crate::cli::ldv::decrypt_subject(config_path, d).await;
        }
        other => other,
    };
    let node = open(config_path).await?;
    let code = match command {
        Command::Verify {
            trusted_checkpoint,
            key,
            json,
        } => verify(&node, trusted_checkpoint, key, json).await?,
        Command::Export {
            format,
            since,
            until,
            out,
        } => export(&node, format, since, until, out).await?,
        Command::OfficerKey { .. } | Command::DecryptSubject(_) => unreachable!("handled above"),
        Command::Checkpoint { json } => {
            let cp = proof::checkpoint(&node.store, None).await?;
            let key = own_verifier_key(&node.config)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "size": cp.size,
                        "root_hash": B64.encode(&cp.root),
                        "signed_at": crate::model::clock::rfc3339(cp.at),
                        "signed_note": cp.note,
                        "verifier_key": key,
                    })
                );
            } else {
                print!("{}", cp.note);
                eprintln!("verifier key: {key}");
            }
            ExitCode::SUCCESS
        }
        Command::Prove { request_id, json } => {
            validate::uuid("--request-id", &request_id)?;
            let proof =
                proof::inclusion_proof(&node.store, LeafRef::RequestId(request_id), None).await?;
            let key = own_verifier_key(&node.config)?;
            let signed = Checkpoint::verify(&proof.checkpoint.note, &key);
            let verified = proof.verify();
            let ok = signed.is_ok() && verified.is_ok();
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "index": proof.index,
                        "tree_size": proof.tree_size,
                        "leaf_hash": B64.encode(crate::tlog::merkle::leaf_hash(&proof.leaf)),
                        "hashes": proof.hashes.iter().map(|h| B64.encode(h)).collect::<Vec<_>>(),
                        "checkpoint": proof.checkpoint.note,
                        "verifier_key": key,
                        "verified": ok,
                    })
                );
            } else {
                println!(
                    "entry {} in the log of size {}",
                    proof.index, proof.tree_size
                );
                println!(
                    "leaf hash  {}",
                    B64.encode(crate::tlog::merkle::leaf_hash(&proof.leaf))
                );
                for (i, h) in proof.hashes.iter().enumerate() {
                    println!("proof[{i:>2}]  {}", B64.encode(h));
                }
                println!("checkpoint:\n{}", proof.checkpoint.note);
                match (&signed, &verified) {
                    (Ok(_), Ok(())) => {
                        println!("verified: the entry is in the log the node signed")
                    }
                    (Err(e), _) => println!("NOT verified: checkpoint signature: {e}"),
                    (_, Err(e)) => println!("NOT verified: {e}"),
                }
            }
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Report { case_id, json } => {
            validate::uuid("--case", &case_id)?;
            let Some(case) = node.store.case_meta(&case_id).await? else {
                anyhow::bail!("no case with this case_id on this node (--case)");
            };
            let keys = Keys::load(&node.config.path(&node.config.node.keys_dir)).context(
                "the report names the subject as the log does, with the node's pseudonym key",
            )?;
            let registry = Registry::new(&node.config.participants);
            let report = oversight::subject_report(
                &node.store,
                &registry,
                &node.config.node.name,
                &[oversight::ReportedCase::of(&case, keys.pseudonym_secret())],
            )
            .await?;
            if json {
                let entries: Vec<_> = report
                    .entries
                    .iter()
                    .map(|e| {
                        serde_json::json!({
                            "index": e.index,
                            "at": crate::model::clock::rfc3339(e.record.at),
                            "organisation": e.organisation,
                            "participant": e.record.caller,
                            "role": e.record.role,
                            "method": e.record.method,
                            "purpose": e.record.purpose,
                            "released": e.record.released.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
                            "withheld": e.record.withheld.iter().map(|(c, r)| serde_json::json!({"category": c.as_str(), "reason": r})).collect::<Vec<_>>(),
                            "decision": e.record.decision.as_str(),
                            "summary": e.summary,
                        })
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({"case_ids": report.case_ids, "entries": entries})
                );
            } else {
                print!("{}", report.text);
            }
            ExitCode::SUCCESS
        }
    };
    node.store.close().await;
    Ok(code)
}

async fn verify(
    node: &Node,
    trusted: Option<PathBuf>,
    key: Option<String>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let key = match key {
        Some(k) => k,
        None => own_verifier_key(&node.config)?,
    };
    let trusted = match trusted {
        Some(path) => Some(
            crate::files::read_to_string(&path, crate::files::Kind::Note).with_context(|| {
                format!("cannot read the trusted checkpoint {}", path.display())
            })?,
        ),
        None => None,
    };
    let tty = std::io::stderr().is_terminal() && !json;
    let report = verify::verify_log(&node.store, &key, trusted.as_deref(), |done, total| {
        if tty && total > 0 {
            let pct = done * 100 / total;
            eprint!("\rverifying {done}/{total} entries ({pct}%)");
            let _ = std::io::stderr().flush();
        }
    })
    .await?;
    if tty {
        eprintln!();
    }
    if json {
        println!(
            "{}",
            serde_json::json!({
                "intact": report.intact(),
                "entries": report.entries,
                "checkpoints": report.checkpoints,
                "tree_nodes": report.tree_nodes,
                "root": report.root,
                "trusted_checkpoint": report.trusted_checkpoint,
                "first_bad_index": report.first_problem().map(|p| p.index),
                "problems": report.problems,
                "seconds": report.seconds,
                "entries_per_second": report.entries_per_second(),
            })
        );
    } else if report.intact() {
        println!(
            "log intact: {} entries, {} tree nodes, {} signed checkpoints{} verified in {:.2}s ({:.0} entries/s)\nroot {}",
            report.entries,
            report.tree_nodes,
            report.checkpoints,
            report
                .trusted_checkpoint
                .map(|s| format!(", extends the trusted checkpoint of size {s},"))
                .unwrap_or_default(),
            report.seconds,
            report.entries_per_second(),
            report.root
        );
    } else {
        let first = report.first_problem().expect("not intact means a problem");
        println!(
            "LOG NOT INTACT: first bad index {}: {}",
            first.index, first.what
        );
        for p in report.problems.iter().skip(1).take(20) {
            println!("  also at {}: {}", p.index, p.what);
        }
    }
    Ok(if report.intact() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// An optional `--since`/`--until`, checked as every entry point checks
/// an instant.
fn parse_time(field: &str, s: &Option<String>) -> anyhow::Result<Option<i64>> {
    Ok(s.as_deref()
        .map(|t| validate::rfc3339(field, t))
        .transpose()?)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

async fn export(
    node: &Node,
    format: ExportFormat,
    since: Option<String>,
    until: Option<String>,
    out: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let filter = LogFilter {
        since: parse_time("--since", &since)?,
        until: parse_time("--until", &until)?,
        ..LogFilter::default()
    };
    validate::time_range(("--since", filter.since), ("--until", filter.until))?;
    let mut w: Box<dyn Write> = match &out {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    if format == ExportFormat::Ldv {
        let n = crate::cli::ldv::export_ldv(&node.store, &node.config.node.name, &filter, &mut w)
            .await?;
        w.flush()?;
        drop(w);
        if let Some(p) = out {
            eprintln!("exported {n} records to {}", p.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let csv = format == ExportFormat::Csv;
    if csv {
        writeln!(
            w,
            "index,request_id,at,caller,role,method,case_id,subject,purpose,decision,status,released,withheld,rules,consents,actor_hash,peer_fingerprint,detail,subjects,policy_sha256"
        )?;
    }
    let mut start = 0;
    let mut n = 0u64;
    loop {
        let rows = node.store.query_log(&filter, start, 10_000).await?;
        let Some(last) = rows.last() else { break };
        start = last.seq + 1;
        for row in rows {
            let r = AccessRecord::decode(&row.record).with_context(|| {
                format!(
                    "entry {} does not decode; run `sluis audit verify`",
                    row.seq
                )
            })?;
            let released: Vec<&str> = r.released.iter().map(|c| c.as_str()).collect();
            let withheld: Vec<String> = r
                .withheld
                .iter()
                .map(|(c, why)| format!("{c}:{why}"))
                .collect();
            let policy = r.policy.map(hex::encode);
            if csv {
                let fields = [
                    row.seq.to_string(),
                    r.request_id,
                    crate::model::clock::rfc3339(r.at),
                    r.caller,
                    r.role,
                    r.method,
                    r.case_id.unwrap_or_default(),
                    r.subject.unwrap_or_default(),
                    r.purpose.unwrap_or_default(),
                    r.decision.as_str().to_string(),
                    r.status,
                    released.join(";"),
                    withheld.join(";"),
                    r.rules.join(";"),
                    r.consents.join(";"),
                    r.actor_hash.unwrap_or_default(),
                    r.peer_fingerprint.unwrap_or_default(),
                    r.detail,
                    r.subjects.join(";"),
                    policy.unwrap_or_default(),
                ];
                let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
                writeln!(w, "{}", line.join(","))?;
            } else {
                let v = serde_json::json!({
                    "index": row.seq,
                    "request_id": r.request_id,
                    "at": crate::model::clock::rfc3339(r.at),
                    "caller": r.caller,
                    "role": r.role,
                    "method": r.method,
                    "case_id": r.case_id,
                    "subject": r.subject,
                    "purpose": r.purpose,
                    "asked": r.asked.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
                    "released": released,
                    "withheld": r.withheld.iter().map(|(c, why)| serde_json::json!({"category": c.as_str(), "reason": why})).collect::<Vec<_>>(),
                    "decision": r.decision.as_str(),
                    "status": r.status,
                    "detail": r.detail,
                    "rules": r.rules,
                    "consents": r.consents,
                    "actor_hash": r.actor_hash,
                    "peer_fingerprint": r.peer_fingerprint,
                    "subjects": r.subjects,
                    "policy_sha256": policy,
                });
                writeln!(w, "{v}")?;
            }
            n += 1;
        }
    }
    w.flush()?;
    drop(w);
    if let Some(p) = out {
        eprintln!("exported {n} records to {}", p.display());
    }
    Ok(ExitCode::SUCCESS)
}
