//! `bench scale`: does a read cost the same with 10 k cases as with 1 M, and
//! with a 10 M-entry access log? The curve answers it.
//!
//! Registering a million cases through the API would take hours of fsyncs,
//! so cases are bulk-loaded straight into the node's SQLite database in
//! large transactions — sealed exactly as `exchange` seals them (AES-256-GCM
//! under the node's data key, bound to case and category), with the owner's
//! pseudonym and subject-index entries `RegisterCase` writes, and the two
//! consents every benchmark case has. The access log is filled in bulk
//! (`bulk::bulk_append`, as `bench audit-log` does: big transactions, the
//! Merkle tree extended, a checkpoint signed with the node's key) so the
//! node starts on it as on its own. Between stages the gateway (a child
//! process, pinned) is restarted on the grown database and loaded with reads
//! of cases drawn uniformly from all of them, so no cache makes a large
//! table look small.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::bail;
use prost::Message;
use serde::Serialize;

use sluis::config::Config;
use sluis::dev::sample::{self, OWNER};
use sluis::gateway::pseudonym::Pseudonymiser;
use sluis::gateway::vault::Keys;
use sluis::model::Category;
use sluis::rpc::proto::v1 as pb;
use sluis::store::Store;
use sluis::tlog::{AccessRecord, Decision};

use crate::bulk::bulk_append;
use crate::loadgen::{self, Load};
use crate::procs::{Pinning, Server};
use crate::report::{self, Rate, Summary};
use crate::setup::{self, Workload};

#[derive(clap::Args, Debug)]
#[command(
    mut_arg("duration", |a| a.default_value("4s")),
    mut_arg("warmup", |a| a.default_value("1s"))
)]
pub struct Args {
    /// Case counts to measure at, increasing (cases are added between stages).
    #[arg(long, value_delimiter = ',', default_values_t = [10_000u64, 100_000])]
    pub cases: Vec<u64>,
    /// Then fill the access log up to this many entries and measure once more
    /// at the largest case count (0: skip).
    #[arg(long, default_value_t = 1_000_000)]
    pub log_entries: u64,
    #[command(flatten)]
    pub load: Load,
    /// Fixed rate for the latency runs, or "auto": half the first stage's
    /// closed-loop throughput (then the same for every stage).
    #[arg(long, default_value = "auto", value_parser = report::parse_rate)]
    pub rate: Rate,
    /// Cases drawn (uniformly, from all) for the reads at each stage.
    #[arg(long, default_value_t = 20_000)]
    pub sample: usize,
    #[arg(long)]
    pub json: bool,
    #[arg(long)]
    pub quiet: bool,
    /// Keep the node's folder here instead of a temporary one.
    #[arg(long)]
    pub keep: Option<PathBuf>,
    #[command(flatten)]
    pub pinning: Pinning,
}

#[derive(Serialize)]
struct Stage {
    cases: u64,
    /// Access-log entries when the stage's runs began.
    log_entries: i64,
    database_mib: f64,
    /// Seconds it took to bulk-load this stage's additions.
    load_seconds: f64,
    closed: Summary,
    open: Summary,
    server_cpu_us_per_req: Option<f64>,
    gateway_peak_rss_mib: Option<f64>,
}

/// A deterministic bijective 64-bit mix (splitmix64's finaliser): case `i`
/// gets the same id every run, and distinct `i` distinct ids.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Case `i`'s id: a v4-shaped UUID, as `RegisterCase` makes, but reproducible.
pub fn case_id(i: u64) -> String {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&mix(i).to_be_bytes());
    b[8..].copy_from_slice(&mix(i ^ 0x5555_5555_5555_5555).to_be_bytes());
    uuid::Builder::from_random_bytes(b)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// Case `i`'s subject reference (the random bytes `RegisterCase` draws),
/// reproducible.
pub fn subject_ref(i: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(16);
    b.extend_from_slice(&mix(i ^ 0xa5a5_a5a5_a5a5_a5a5).to_be_bytes());
    b.extend_from_slice(&mix(i.wrapping_add(0x1234_5678)).to_be_bytes());
    b
}

/// Per-category payloads, encoded as the API layer encodes them.
fn payloads(d: &pb::CaseData) -> Vec<(Category, Vec<u8>)> {
    let mut out = Vec::new();
    let mut put = |c, v: Option<Vec<u8>>| {
        if let Some(v) = v {
            out.push((c, v));
        }
    };
    put(
        Category::Identity,
        d.identity.as_ref().map(Message::encode_to_vec),
    );
    put(
        Category::ResidenceProcedure,
        d.residence_procedure.as_ref().map(Message::encode_to_vec),
    );
    put(
        Category::Shelter,
        d.shelter.as_ref().map(Message::encode_to_vec),
    );
    put(
        Category::Guidance,
        d.guidance.as_ref().map(Message::encode_to_vec),
    );
    put(
        Category::Perspective,
        d.perspective.as_ref().map(Message::encode_to_vec),
    );
    put(
        Category::Medical,
        d.medical.as_ref().map(Message::encode_to_vec),
    );
    put(
        Category::Safety,
        d.safety.as_ref().map(Message::encode_to_vec),
    );
    put(
        Category::Outcome,
        d.outcome.as_ref().map(Message::encode_to_vec),
    );
    out
}

/// A multi-row INSERT and its values, for the bulk-load connection.
struct Insert {
    sql: String,
    values: Vec<Box<dyn rusqlite::ToSql>>,
}

impl Insert {
    fn new(sql: String) -> Insert {
        Insert {
            sql,
            values: Vec::new(),
        }
    }

    fn bind(mut self, v: impl rusqlite::ToSql + 'static) -> Insert {
        self.values.push(Box::new(v));
        self
    }

    fn execute(self, tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<usize> {
        tx.prepare_cached(&self.sql)?
            .execute(rusqlite::params_from_iter(&self.values))
    }
}

fn insert_sql(table: &str, columns: &[&str], rows: usize) -> String {
    let one = format!("({})", vec!["?"; columns.len()].join(", "));
    format!(
        "INSERT INTO {table} ({}) VALUES {}",
        columns.join(", "),
        vec![one; rows].join(", ")
    )
}

/// Adds cases `from..to` to the node's database, 100 per statement and
/// 5,000 per transaction, without fsync (a bulk import; the node opens the
/// file with `synchronous=FULL` again when it starts).
pub async fn load_cases(
    db: &Path,
    keys: &Keys,
    from: u64,
    to: u64,
    quiet: bool,
) -> anyhow::Result<()> {
    const PER_STATEMENT: u64 = 100;
    const PER_TX: u64 = 5_000;
    let pseudonyms = Pseudonymiser::new(keys.pseudonym_secret());
    let mut conn = rusqlite::Connection::open(db)?;
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF;")?;
    let now = sluis::model::clock::now_millis();
    let terms = sample::consents();
    let started = Instant::now();
    let mut i = from;
    while i < to {
        let tx = conn.transaction()?;
        let tx_end = (i + PER_TX).min(to);
        while i < tx_end {
            let n = PER_STATEMENT.min(tx_end - i);
            let range = i..i + n;
            let ids: Vec<String> = range.clone().map(case_id).collect();

            let sql = insert_sql(
                "cases",
                &[
                    "id",
                    "owner",
                    "subject_ref",
                    "version",
                    "created_at",
                    "updated_at",
                ],
                n as usize,
            );
            let mut q = Insert::new(sql);
            for (k, id) in range.clone().zip(&ids) {
                q = q
                    .bind(id.clone())
                    .bind(OWNER)
                    .bind(subject_ref(k))
                    .bind(1i64)
                    .bind(now)
                    .bind(now);
            }
            q.execute(&tx)?;

            let mut data = Vec::new();
            for (k, id) in range.clone().zip(&ids) {
                for (cat, plain) in payloads(&sample::case_data(k)) {
                    // The associated data `exchange` binds a sealed category to.
                    let aad = format!("sluis/v1/case/{id}/{cat}");
                    data.push((id.clone(), cat, keys.seal(aad.as_bytes(), &plain)?));
                }
            }
            let sql = insert_sql("case_data", &["case_id", "category", "sealed"], data.len());
            let mut q = Insert::new(sql);
            for (id, cat, sealed) in data {
                q = q.bind(id).bind(i64::from(cat.code())).bind(sealed);
            }
            q.execute(&tx)?;

            let mut consents = Vec::new();
            for (k, id) in range.clone().zip(&ids) {
                for (j, t) in terms.iter().enumerate() {
                    let consent_id =
                        case_id(k.wrapping_mul(4).wrapping_add(j as u64 + 1) ^ (1 << 62));
                    let (kind, value) = match &t.recipient {
                        pb::recipient::Recipient::Participant(p) => ("participant", p.clone()),
                        pb::recipient::Recipient::Role(r) => (
                            "role",
                            pb::Role::try_from(*r)
                                .map(|r| r.as_str_name().trim_start_matches("ROLE_").to_lowercase())
                                .unwrap_or_default(),
                        ),
                    };
                    let cats: Vec<&str> = t.categories.iter().map(|c| c.as_str()).collect();
                    let mut purposes = t.purposes.clone();
                    purposes.sort();
                    consents.push((
                        consent_id,
                        id.clone(),
                        cats.join(","),
                        purposes.join(","),
                        kind,
                        value,
                        k,
                    ));
                }
            }
            let sql = insert_sql(
                "consents",
                &[
                    "id",
                    "case_id",
                    "recorded_by",
                    "categories",
                    "purposes",
                    "valid_from",
                    "valid_until",
                    "evidence_ref",
                    "created_at",
                ],
                consents.len(),
            );
            let mut q = Insert::new(sql);
            for (cid, case, cats, purposes, _, _, k) in &consents {
                q = q
                    .bind(cid.clone())
                    .bind(case.clone())
                    .bind(OWNER)
                    .bind(cats.clone())
                    .bind(purposes.clone())
                    .bind(now - 60_000)
                    .bind(None::<i64>)
                    .bind(format!("BENCH-{k:08}"))
                    .bind(now - 60_000);
            }
            q.execute(&tx)?;
            let sql = insert_sql(
                "consent_recipients",
                &["consent_id", "kind", "value"],
                consents.len(),
            );
            let mut q = Insert::new(sql);
            for (cid, _, _, _, kind, value, _) in &consents {
                q = q.bind(cid.clone()).bind(*kind).bind(value.clone());
            }
            q.execute(&tx)?;
            let sql = insert_sql(
                "consent_events",
                &["consent_id", "kind", "at", "by", "note"],
                consents.len(),
            );
            let mut q = Insert::new(sql);
            for (cid, ..) in &consents {
                q = q
                    .bind(cid.clone())
                    .bind("given")
                    .bind(now - 60_000)
                    .bind(OWNER)
                    .bind("");
            }
            q.execute(&tx)?;

            // What RegisterCase writes besides the case: the owner's
            // pseudonym and the keyed-hash subject index.
            let sql = insert_sql(
                "pseudonyms",
                &["recipient", "pseudonym", "case_id"],
                n as usize,
            );
            let mut q = Insert::new(sql);
            for (k, id) in range.clone().zip(&ids) {
                q = q
                    .bind(OWNER)
                    .bind(pseudonyms.pseudonym(OWNER, &subject_ref(k)))
                    .bind(id.clone());
            }
            q.execute(&tx)?;
            let sql = insert_sql("subject_index", &["kind", "digest", "case_id"], n as usize);
            let mut q = Insert::new(sql);
            for (k, id) in range.zip(&ids) {
                q = q
                    .bind("v_number")
                    .bind(pseudonyms.index_digest("v_number", &sample::v_number(k)))
                    .bind(id.clone());
            }
            q.execute(&tx)?;
            i += n;
        }
        tx.commit()?;
        if !quiet {
            let done = i - from;
            eprint!(
                "\r  loading cases: {}/{} ({:.0}/s)   ",
                report::thousands(i as f64),
                report::thousands(to as f64),
                done as f64 / started.elapsed().as_secs_f64().max(1e-9)
            );
        }
    }
    if !quiet {
        eprint!("\r{:<70}\r", "");
    }
    conn.close().map_err(|(_, e)| e)?;
    Ok(())
}

/// A GetCase record as the gateway writes one, for case `k`.
fn log_record(i: u64, k: u64, pseudonyms: &Pseudonymiser, at: i64) -> AccessRecord {
    let mut r = AccessRecord::new(uuid::Uuid::now_v7().to_string(), at, "GetCase");
    r.caller = "ngo-vluchtelingenwerk".into();
    r.role = "ngo".into();
    r.case_id = Some(case_id(k));
    r.subject = Some(pseudonyms.audit_pseudonym(&subject_ref(k)));
    r.purpose = Some("case_consultation".into());
    r.asked = Category::ALL.to_vec();
    r.released = vec![Category::Identity, Category::Shelter, Category::Perspective];
    r.withheld = vec![(Category::Medical, "no_consent".into())];
    r.decision = Decision::Partial;
    r.status = "OK".into();
    r.rules = vec!["ngo-guidance-consent".into()];
    r.consents = vec![case_id(k.wrapping_mul(4).wrapping_add(1) ^ (1 << 62))];
    r.detail = format!("bench-{i}");
    r
}

/// Extends the node's access log to `target` entries of GetCase records
/// over the `cases` bulk-loaded cases, signed with the node's key.
async fn load_log(
    config: &Config,
    keys: Arc<Keys>,
    cases: u64,
    target: u64,
    quiet: bool,
) -> anyhow::Result<()> {
    let (store, sink) = Store::open_sqlite(&config.sqlite_path()?).await?;
    let size = store.log_size().await? as u64;
    let pseudonyms = Pseudonymiser::new(keys.pseudonym_secret());
    let started = Instant::now();
    let at = sluis::model::clock::now_millis() - 86_400_000;
    let mut last = size;
    bulk_append(
        &store,
        sink,
        keys,
        &config.node.name,
        target,
        |k| log_record(k, mix(k) % cases.max(1), &pseudonyms, at + (k / 100) as i64),
        |i| {
            if !quiet && (i / 200_000 != last / 200_000 || i == target) {
                eprint!(
                    "\r  filling the access log: {}/{} ({:.0}/s)   ",
                    report::thousands(i as f64),
                    report::thousands(target as f64),
                    (i - size) as f64 / started.elapsed().as_secs_f64().max(1e-9)
                );
            }
            last = i;
        },
    )
    .await?;
    store.close().await;
    if !quiet {
        eprint!("\r{:<70}\r", "");
    }
    Ok(())
}

fn file_mib(db: &Path) -> f64 {
    let size = |p: PathBuf| std::fs::metadata(p).map_or(0, |m| m.len());
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    (size(db.to_path_buf()) + size(wal)) as f64 / (1024.0 * 1024.0)
}

/// Cases already in the database (bulk-loaded ids are `case_id(0..n)`).
async fn case_count(config: &Config) -> anyhow::Result<u64> {
    let conn = rusqlite::Connection::open(config.sqlite_path()?)?;
    let n: i64 = conn.query_row("SELECT COUNT(*) FROM cases", [], |r| r.get(0))?;
    Ok(n as u64)
}

async fn log_size(config: &Config) -> anyhow::Result<i64> {
    let (store, _) = Store::open_sqlite(&config.sqlite_path()?).await?;
    let n = store.log_size().await?;
    store.close().await;
    Ok(n)
}

pub async fn run(a: Args, cpus: crate::procs::Cpus) -> anyhow::Result<()> {
    let crate::procs::Cpus {
        server: server_cpus,
        client: client_cpus,
    } = cpus;
    let mut sizes = a.cases.clone();
    if sizes.is_empty() || sizes.contains(&0) || sizes.windows(2).any(|w| w[0] >= w[1]) {
        bail!("--cases takes increasing counts, e.g. 10000,100000,1000000");
    }
    sizes.dedup();
    let fixed_rate = a.rate.fixed();
    let machine = report::machine();
    let tmp = tempfile::tempdir()?;
    let dir = a
        .keep
        .clone()
        .unwrap_or_else(|| tmp.path().to_path_buf())
        .join("node");
    let say = |m: String| {
        if a.json {
            eprintln!("{m}");
        } else {
            println!("{m}");
        }
    };
    say(format!("sluis bench scale on {machine}"));
    say(format!(
        "servers on CPUs {}, load generator on CPUs {}",
        server_cpus.as_deref().unwrap_or("(unpinned)"),
        client_cpus.as_deref().unwrap_or("(unpinned)")
    ));
    // With --keep, a node left by an earlier run is reused: its cases and
    // log stay, and only what is missing is loaded.
    let existing = dir.join(sluis::dev::init::CONFIG_FILE);
    let config_path = if existing.exists() {
        say(format!("reusing the node in {}", dir.display()));
        existing
    } else {
        sluis::dev::init::init(&dir, "127.0.0.1:0".parse()?).await?
    };
    crate::procs::use_copy_of_self(dir.parent().unwrap_or(&dir))?;
    let config = Config::load(&config_path)?;
    let keys = Arc::new(Keys::load(&config.path(&config.node.keys_dir))?);
    let db = config.sqlite_path()?;

    let mut stages: Vec<Stage> = Vec::new();
    let mut rate = fixed_rate;
    let mut loaded = case_count(&config).await?;
    let mut plan_steps: Vec<(u64, u64)> = sizes.iter().map(|&n| (n, 0)).collect();
    if a.log_entries > 0 {
        plan_steps.push((*sizes.last().unwrap_or(&0), a.log_entries));
    }
    for (cases, log_target) in plan_steps {
        if cases < loaded {
            say(format!(
                "skipping {} cases: the reused node holds {}",
                report::thousands(cases as f64),
                report::thousands(loaded as f64)
            ));
            continue;
        }
        let t = Instant::now();
        if cases > loaded {
            say(format!(
                "adding cases {}..{}",
                report::thousands(loaded as f64),
                report::thousands(cases as f64)
            ));
            load_cases(&db, &keys, loaded, cases, a.quiet).await?;
            loaded = cases;
        }
        if log_target > 0 {
            say(format!(
                "filling the access log to {} entries",
                report::thousands(log_target as f64)
            ));
            load_log(&config, keys.clone(), loaded, log_target, a.quiet).await?;
        }
        let load_seconds = t.elapsed().as_secs_f64();
        let log_entries = log_size(&config).await?;

        let gateway = Server::gateway(&config_path, server_cpus.as_deref(), &dir, false)?;
        let sample: Vec<String> = (0..a.sample.max(1) as u64)
            .map(|j| case_id(mix(j ^ 0x0f0f_0f0f) % loaded))
            .collect();
        let workload = Workload::standard(&dir, sample);
        if stages.is_empty() {
            // The bulk-loaded cases must read like registered ones: each
            // participant gets its categories (sealed data opens, consents
            // count).
            for (who, r) in setup::capture_answers(gateway.addr, &workload).await? {
                say(format!(
                    "  {who:<22} receives {}",
                    setup::category_names(&r.released)
                ));
            }
        }
        let mut closed: Option<Summary> = None;
        let mut open_summary: Option<Summary> = None;
        let mut cpu_per_req = None;
        for open in [false, true] {
            if open && rate.is_none() {
                let r = closed.as_ref().map_or(200.0, |c| c.req_per_s);
                rate = Some((r / 2.0).max(1.0).round());
            }
            let plan = a
                .load
                .plan(open.then(|| rate.unwrap_or(100.0)), Some(gateway.pid()));
            let label = format!(
                "{} cases, {} log: {}",
                report::thousands(loaded as f64),
                report::thousands(log_entries as f64),
                if open { "fixed rate" } else { "closed loop" }
            );
            let out =
                loadgen::measure(gateway.addr, &workload, &plan, "gateway", label, a.quiet).await?;
            let s = out.summary();
            if open {
                open_summary = Some(s);
            } else {
                cpu_per_req = out.server_cpu_s.map(|c| c * 1e6 / s.requests.max(1) as f64);
                closed = Some(s);
            }
        }
        let rss = gateway.peak_rss_kib().map(|k| k as f64 / 1024.0);
        gateway.stop()?;
        let empty = || Summary::new(&report::histogram(), 0, 0, 0.0);
        let stage = Stage {
            cases: loaded,
            log_entries,
            database_mib: file_mib(&db),
            load_seconds,
            closed: closed.unwrap_or_else(empty),
            open: open_summary.unwrap_or_else(empty),
            server_cpu_us_per_req: cpu_per_req,
            gateway_peak_rss_mib: rss,
        };
        if !a.json {
            if stages.is_empty() {
                print_header(rate.unwrap_or(0.0));
            }
            print_stage(&stage);
        }
        stages.push(stage);
    }
    if a.json {
        let out = serde_json::json!({
            "machine": machine,
            "server_cpus": server_cpus,
            "client_cpus": client_cpus,
            "connections": a.load.connections,
            "in_flight": a.load.in_flight,
            "open_loop_rate": rate,
            "duration_s": a.load.duration.as_secs_f64(),
            "stages": stages,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else if let (Some(first), Some(last)) = (stages.first(), stages.last()) {
        println!(
            "\nfrom {} to {} cases and {} log entries: p50 {:.3} → {:.3} ms, p99 {:.3} → {:.3} ms at {} req/s; closed-loop {} → {} req/s",
            report::thousands(first.cases as f64),
            report::thousands(last.cases as f64),
            report::thousands(last.log_entries as f64),
            first.open.p50_ms,
            last.open.p50_ms,
            first.open.p99_ms,
            last.open.p99_ms,
            rate.unwrap_or(0.0),
            report::thousands(first.closed.req_per_s),
            report::thousands(last.closed.req_per_s),
        );
    }
    Ok(())
}

fn print_header(rate: f64) {
    println!();
    println!(
        "{:>10} {:>12} {:>8} | {:>9} {:>8} | {:>16} {:>7} {:>7} {:>7} {:>7} | {:>7} {:>7}",
        "cases",
        "log before",
        "db MiB",
        "closed/s",
        "µs CPU",
        format!("at {rate:.0} req/s:"),
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "RSS MiB",
        "load s"
    );
}

fn print_stage(s: &Stage) {
    println!(
        "{:>10} {:>12} {:>8.0} | {:>9} {:>8} | {:>16} {:>7.3} {:>7.3} {:>7.3} {:>7.2} | {:>7} {:>7.0}",
        report::thousands(s.cases as f64),
        report::thousands(s.log_entries as f64),
        s.database_mib,
        report::thousands(s.closed.req_per_s),
        s.server_cpu_us_per_req
            .map_or("-".into(), |c| format!("{c:.0}")),
        "",
        s.open.p50_ms,
        s.open.p90_ms,
        s.open.p99_ms,
        s.open.max_ms,
        s.gateway_peak_rss_mib
            .map_or("-".into(), |m| format!("{m:.0}")),
        s.load_seconds
    );
}
