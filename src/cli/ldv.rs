//! The lines of `sluis audit export --format ldv` (the walk over the log is
//! `cli::audit::Records`, shared with every export), `sluis audit officer-key` and `sluis
//! audit decrypt-subject`: the access log in the shape of the Logboek
//! Dataverwerkingen standard (Logius, "Component: Logboek", interface),
//! and the privacy officer's key for the data subject ids in it.
//!
//! One JSON object per line, one line per access record and data subject
//! (a listing's record is one line per subject it names), in log order:
//! `trace_id` (32 hex), `span_id` (16 hex), `status_code`
//! (`STATUS_CODE_UNSET` / `_OK` / `_ERROR`), `name`, `start_time` and
//! `end_time` (ms since the Unix epoch), `foreign_operation` (`trace_id`,
//! `span_id`, `entity`) when the caller sent a W3C `traceparent`,
//! `resource.attributes` naming the node, and `attributes`: the `dpl.core.*`
//! keys of the standard and `sluis.*` keys linking the line to its signed
//! entry. `docs/processing-log.md` maps each field to its source.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use crate::config::Config;
use crate::gateway::officer::OfficerSecret;
use crate::tlog::{AccessRecord, LdvStatus, SubjectIdType};

/// Why a line that concerns a data subject carries no
/// `dpl.core.data_subject_id`, in `sluis.data_subject_id_absent`; `None`
/// when it carries one or concerns no subject. `listing` is whether the
/// line is one subject's of a record that names its subjects only by audit
/// pseudonym. Every method that concerns one case names it as a read does
/// (`Exchange::name_subject`: the audit pseudonym and, when the case holds
/// a sealed V-number or BSN and the node has the officer's key, the sealed
/// id); so the reason follows from the record alone:
///
/// - a listing's line (several subjects, or entries handed out that name
///   subjects): named by pseudonym only;
/// - a record before version 3: no processing-log fields;
/// - a case id and no subject pseudonym: the request never reached the
///   case (refused first, no such case here, or held at another node);
/// - a subject pseudonym and no sealed id: the case held no sealed
///   identifier (registered before they were sealed and not updated
///   since, registered with neither, erased, or referred away from this
///   node), or the node had no officer key.
fn subject_id_absent(r: &AccessRecord, listing: bool) -> Option<String> {
    let concerns = r.case_id.is_some() || r.subject.is_some() || !r.subjects.is_empty();
    if !concerns {
        return None;
    }
    if listing || (r.subject.is_none() && r.case_id.is_none()) {
        return Some("listing: the record names each of its subjects by audit pseudonym (sluis.subject) only, not by a sealed id; the sealed id is on each subject's own case reads".into());
    }
    match &r.ldv {
        None => Some(format!(
            "record version {}: written before records held processing-log fields",
            r.version()
        )),
        Some(l) if l.data_subject.is_some() => None,
        Some(_) if r.subject.is_none() => Some(
            "case not reached: the request was refused before its case was read, or names a case this node does not hold (none with this id, or held at another node); the record names the case id asked for only".into(),
        ),
        Some(_) => Some(
            "no sealed subject id: the case held no sealed V-number or BSN on this node when this was recorded (registered before subject ids were sealed and not updated since with its identity, registered without either, erased, or referred away), or the node had no processing_log.officer_key then".into(),
        ),
    }
}

/// One record as LDV log lines: one line, or — for a record of a listing
/// that names several subjects (`FindCases`, an officer's query) — one line
/// per subject, since the standard has one data subject per processing
/// record. The lines of one listing share its trace and span ids, name
/// their subject by its audit pseudonym (`sluis.subject`, the one the
/// subject's access report uses) and say which of how many they are
/// (`sluis.listing.part`, `sluis.listing.subjects`).
pub(crate) fn ldv_lines(index: i64, node: &str, r: &AccessRecord) -> Vec<Value> {
    let line = ldv_line(index, node, r);
    let subjects: Vec<&String> = r.subjects.iter().chain(r.subject.as_ref()).collect();
    let mut unique: Vec<&String> = Vec::with_capacity(subjects.len());
    for s in subjects {
        if !unique.contains(&s) {
            unique.push(s);
        }
    }
    let add = |line: &mut Value, k: &str, v: Value| {
        if let Some(a) = line["attributes"].as_array_mut() {
            a.push(json!({"key": k, "value": v}));
        }
    };
    if unique.len() <= 1 {
        let mut line = line;
        if let Some(s) = unique.first() {
            add(&mut line, "sluis.subject", json!(s));
        }
        if let Some(why) = subject_id_absent(r, false) {
            add(&mut line, "sluis.data_subject_id_absent", json!(why));
        }
        return vec![line];
    }
    let n = unique.len();
    unique
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let mut one = line.clone();
            // The sealed id, when the record holds one, is its own
            // subject's (`AccessRecord::subject`), never the others'.
            if r.subject.as_ref() != Some(s)
                && let Some(a) = one["attributes"].as_array_mut()
            {
                a.retain(|x| {
                    x["key"] != "dpl.core.data_subject_id"
                        && x["key"] != "dpl.core.data_subject_id_type"
                });
            }
            add(&mut one, "sluis.subject", json!(s));
            add(&mut one, "sluis.listing.part", json!(i + 1));
            add(&mut one, "sluis.listing.subjects", json!(n));
            let has_id = r.subject.as_ref() == Some(s)
                && r.ldv.as_ref().is_some_and(|l| l.data_subject.is_some());
            if !has_id && let Some(why) = subject_id_absent(r, true) {
                add(&mut one, "sluis.data_subject_id_absent", json!(why));
            }
            one
        })
        .collect()
}

/// One record as an LDV log line. Records written before access record
/// version 3 have no LDV fields: their `trace_id` is the request id's 16
/// bytes (a UUID), their `span_id` the first 8 bytes of its SHA-256, their
/// status derived from the gRPC status, start and end their one time, and
/// `sluis.record_version` says so.
fn ldv_line(index: i64, node: &str, r: &AccessRecord) -> Value {
    let mut attributes: Vec<Value> = Vec::new();
    let mut attr = |k: &str, v: Value| attributes.push(json!({"key": k, "value": v}));
    let (trace_id, span_id, status, end, foreign, version) = match &r.ldv {
        Some(l) => (
            l.trace.trace_id.hex(),
            l.trace.span_id.hex(),
            l.status_code,
            l.end_at,
            l.trace.foreign.as_ref().map(|f| {
                json!({
                    "trace_id": f.trace_id.hex(),
                    "span_id": f.span_id.hex(),
                    "entity": f.entity,
                })
            }),
            r.version(),
        ),
        None => {
            let trace = uuid::Uuid::parse_str(&r.request_id)
                .map(|u| hex::encode(u.as_bytes()))
                .unwrap_or_else(|_| {
                    hex::encode(
                        &ring::digest::digest(&ring::digest::SHA256, r.request_id.as_bytes())
                            .as_ref()[..16],
                    )
                });
            let span = hex::encode(
                &ring::digest::digest(&ring::digest::SHA256, r.request_id.as_bytes()).as_ref()[..8],
            );
            let version = r.version();
            (
                trace,
                span,
                LdvStatus::of_grpc(&r.status),
                r.at,
                None,
                version,
            )
        }
    };
    if let Some(l) = &r.ldv {
        if let Some(a) = &l.processing_activity_id {
            attr("dpl.core.processing_activity_id", json!(a));
        }
        if let Some(s) = &l.data_subject {
            attr("dpl.core.data_subject_id", json!(B64.encode(&s.sealed)));
            attr("dpl.core.data_subject_id_type", json!(s.id_type.as_str()));
        }
    }
    attr("sluis.request_id", json!(r.request_id));
    attr("sluis.log_index", json!(index));
    attr("sluis.record_version", json!(version));
    attr("sluis.grpc_status", json!(r.status));
    attr("sluis.decision", json!(r.decision.as_str()));
    attr("sluis.caller", json!(r.caller));
    attr("sluis.role", json!(r.role));
    if let Some(n) = &r.from_node {
        attr("sluis.from_node", json!(n));
    }
    if let Some(p) = &r.policy {
        attr("sluis.policy_sha256", json!(hex::encode(p)));
    }
    if let Some(p) = &r.purpose {
        attr("sluis.purpose", json!(p));
    }
    if let Some(c) = &r.case_id {
        attr("sluis.case_id", json!(c));
    }
    // Why each category was released (record version 5 on), and an
    // officer's review of an emergency access.
    for b in &r.bases {
        attr(
            &format!("sluis.basis.{}", b.category),
            json!({"kind": b.kind.as_str(), "rules": b.rules, "text": b.text}),
        );
    }
    if let Some(v) = &r.review {
        attr("sluis.review.access_record_id", json!(v.access_record_id));
        attr("sluis.review.verdict", json!(v.verdict.as_str()));
        attr("sluis.review.note", json!(v.note));
    }
    let mut line = json!({
        "trace_id": trace_id,
        "span_id": span_id,
        "status_code": status.as_str(),
        "name": r.method,
        "start_time": r.at,
        "end_time": end,
        "resource": {"attributes": [
            {"key": "service.name", "value": "sluis"},
            {"key": "service.version", "value": env!("CARGO_PKG_VERSION")},
            {"key": "service.instance.id", "value": node},
        ]},
        "attributes": attributes,
    });
    if let (Some(f), Some(obj)) = (foreign, line.as_object_mut()) {
        obj.insert("foreign_operation".into(), f);
    }
    line
}

/// `sluis audit officer-key`: a new key pair; the private key to `out`
/// (created, readable by its owner only; an existing file is not
/// overwritten), the public key into the node configuration at `config`
/// (when it exists) and on standard output.
pub(crate) fn officer_key(config: &Path, out: &Path) -> anyhow::Result<ExitCode> {
    let (secret, public) = OfficerSecret::generate();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(out)
        .and_then(|mut f| f.write_all(secret.as_bytes()))
        .with_context(|| {
            format!(
                "cannot create {} (an existing key is never overwritten; choose another --out)",
                out.display()
            )
        })?;
    eprintln!(
        "private key written to {}: keep it with the privacy officer, off the node",
        out.display()
    );
    if config.exists() {
        set_officer_key(config, &public)?;
        eprintln!(
            "public key set as processing_log.officer_key in {}; restart the node to use it",
            config.display()
        );
    } else {
        eprintln!(
            "no node configuration at {}: put the public key below in its [processing_log] officer_key",
            config.display()
        );
    }
    println!("{public}");
    Ok(ExitCode::SUCCESS)
}

/// Sets `[processing_log] officer_key` in the configuration file, keeping
/// every other line (and comment) as it is; the file must still load.
fn set_officer_key(config: &Path, public: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(config)
        .with_context(|| format!("cannot read {}", config.display()))?;
    let new_line = format!("officer_key = \"{public}\"");
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let header = lines.iter().position(|l| l.trim() == "[processing_log]");
    match header {
        Some(h) => {
            let end = lines[h + 1..]
                .iter()
                .position(|l| l.trim_start().starts_with('['))
                .map_or(lines.len(), |i| h + 1 + i);
            match (h + 1..end).find(|&i| lines[i].trim_start().starts_with("officer_key")) {
                Some(i) => lines[i] = new_line,
                None => lines.insert(h + 1, new_line),
            }
        }
        None => {
            // Before the first array of tables, so it is no participant's.
            let at = lines
                .iter()
                .position(|l| l.trim_start().starts_with("[["))
                .unwrap_or(lines.len());
            lines.splice(
                at..at,
                ["[processing_log]".to_string(), new_line, String::new()],
            );
        }
    }
    let mut updated = lines.join("\n");
    updated.push('\n');
    let tmp = config.with_extension("toml.new");
    std::fs::write(&tmp, &updated).with_context(|| format!("cannot write {}", tmp.display()))?;
    if let Err(e) = Config::load(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        anyhow::bail!(
            "{} was left unchanged: with the key it would not load ({e})",
            config.display()
        );
    }
    std::fs::rename(&tmp, config)
        .with_context(|| format!("cannot replace {}", config.display()))?;
    Ok(())
}

/// What `sluis audit decrypt-subject` opens: a record's sealed id, given
/// as the export shows it, or looked up in the node's log.
pub(crate) struct Decrypt {
    pub(crate) key: PathBuf,
    pub(crate) request_id: String,
    /// The export's `dpl.core.data_subject_id` and `_type`; when absent,
    /// the record is read from the node's database.
    pub(crate) sealed: Option<(String, String)>,
}

/// Opens one record's data subject id with the officer's private key and
/// prints it with its type.
pub(crate) async fn decrypt_subject(config: &Path, d: Decrypt) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&d.key)
        .with_context(|| format!("cannot read the officer key {}", d.key.display()))?;
    let secret = OfficerSecret::parse(&text).with_context(|| d.key.display().to_string())?;
    let (id_type, sealed) = match d.sealed {
        Some((sealed, id_type)) => {
            let t = match id_type.as_str() {
                "Vreemdelingennummer" => SubjectIdType::Vreemdelingennummer,
                "BSN" => SubjectIdType::Bsn,
                _ => anyhow::bail!("--type must be Vreemdelingennummer or BSN"),
            };
            let bytes = B64
                .decode(sealed.trim())
                .context("--sealed is not base64 (copy dpl.core.data_subject_id as exported)")?;
            (t, bytes)
        }
        None => {
            let node = super::audit::open_store(config).await?;
            let seq = node
                .log_position(&d.request_id)
                .await?
                .with_context(|| format!("no access record with request id {}", d.request_id))?;
            let row = node
                .access_log(seq, 1)
                .await?
                .into_iter()
                .next()
                .with_context(|| format!("entry {seq} vanished"))?;
            let r = AccessRecord::decode(&row.record)
                .context("the record does not decode; run `sluis audit verify`")?;
            let s = r.ldv.and_then(|l| l.data_subject).with_context(|| {
                "the record names no data subject id (no case, a case without V-number or BSN, no officer key on the node then, or a record older than version 3)"
            })?;
            (s.id_type, s.sealed)
        }
    };
    let id = secret
        .open(&d.request_id, id_type, &sealed)
        .context("not opened")?;
    println!("{}\t{id}", id_type.as_str());
    Ok(ExitCode::SUCCESS)
}
