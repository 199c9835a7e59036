//! `bench soak`: does a node stay the same size under hours of ordinary
//! traffic? Ten minutes of mixed load — reads by four participants, case
//! registrations, consents granted and withdrawn — over connections that
//! are closed and opened again all the time, while the gateway process's
//! resident memory (`VmRSS`), open file descriptors, threads and the SQLite
//! WAL are sampled from `/proc` and the file system.
//!
//! Every structure of the node that grows with traffic is bounded; the two
//! that fill with distinct cases read (the read cache, the remembered
//! pseudonyms) rise to their caps, which is not a leak. The soak counts
//! the distinct cases and (reader, case) pairs its reads touch, and the
//! verdict covers the samples from the moment both caps are full (and
//! warm-up is over). A leak shows as a slope there: a connection's state
//! kept after it closed (memory, a descriptor), a task per request that
//! never ends (threads, memory), a WAL that is never checkpointed (its
//! file). A run that did not fill the caps says so. Figures, not a time,
//! go to BENCHMARKS.md.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use tonic::Code;

use sluis::dev::sample::{self, OWNER, OWNER_ACTOR, with_actor};
use sluis::rpc::Clients;
use sluis::rpc::proto::v1 as pb;

use crate::procs::Server;
use crate::report;
use crate::setup::{self, ClientSpec, Workload};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// How long the load runs.
    #[arg(long, default_value = "10m", value_parser = report::parse_duration)]
    pub duration: Duration,
    /// The first part of the run, left out of the verdict: caches fill,
    /// pools and buffers reach their working size.
    #[arg(long, default_value = "2m", value_parser = report::parse_duration)]
    pub warmup: Duration,
    /// Time between two samples of the gateway process.
    #[arg(long, default_value = "15s", value_parser = report::parse_duration)]
    pub sample: Duration,
    /// Requests per second over all workers (paced, not a maximum: a soak
    /// is about time, and the log grows with every request).
    #[arg(long, default_value_t = 500.0)]
    pub rate: f64,
    /// Concurrent workers, each on a connection of its own.
    #[arg(long, default_value_t = 8)]
    pub workers: usize,
    /// Requests on a connection before the worker closes it and opens a
    /// new one (a fresh TCP connection and mTLS handshake).
    #[arg(long, default_value_t = 50)]
    pub churn: u64,
    /// Cases registered before the load starts (the load adds more).
    #[arg(long, default_value_t = 100)]
    pub cases: usize,
    /// The node's read cache (`[database] cache_entries`); the default is
    /// the node's own (10,000). The load registers ~30 cases a second, so
    /// a cache of the default size fills about five minutes in: its growth
    /// is the node's memory rising to its working size, not a leak. A
    /// smaller cache fills within the warm-up.
    #[arg(long)]
    pub cache_entries: Option<usize>,
    /// Reads go to the first N cases only; registrations go on, and
    /// consents go to the newest case. By default every case, old and new,
    /// is read, so the node's bounded structures that grow with distinct
    /// cases read — the read cache, the pseudonyms the gateway remembers
    /// having stored (65,536, emptied when full) — fill as the load reads
    /// new cases; the verdict starts once they are full (many `--cases`
    /// fill them within minutes). With a fixed set they never fill.
    #[arg(long)]
    pub read_set: Option<usize>,
    /// A run of a few seconds that only shows everything starts and answers
    /// (for CI): 4 s, samples every second, no verdict.
    #[arg(long)]
    pub smoke: bool,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// One look at the gateway process.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    /// Seconds since the load started.
    pub t_s: f64,
    pub rss_mib: f64,
    pub fds: u64,
    pub threads: u64,
    /// Size of the SQLite write-ahead log file.
    pub wal_mib: f64,
    /// Answers so far (every kind) and connections opened so far.
    pub requests: u64,
    pub connections: u64,
    /// Distinct cases read so far, and distinct (reader, case) pairs read
    /// so far: what fills the node's read cache and its remembered
    /// pseudonyms, by the load's own count.
    pub cases_read: u64,
    pub pairs_read: u64,
}

/// The head of the samples' table (Markdown), for [`Sample::row`].
const TABLE_HEADER: &str = "| t (s) | RSS MiB | fds | threads | WAL MiB | answers | connections | cases read | (reader, case) pairs |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|";

impl Sample {
    /// The sample as a row of the report's table.
    fn row(&self) -> String {
        format!(
            "| {:.0} | {:.1} | {} | {} | {:.1} | {} | {} | {} | {} |",
            self.t_s,
            self.rss_mib,
            self.fds,
            self.threads,
            self.wal_mib,
            self.requests,
            self.connections,
            self.cases_read,
            self.pairs_read
        )
    }
}

/// What a worker does on one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// The case owner: registers cases, grants and withdraws consent,
    /// reads its own cases.
    Owner,
    /// A reader (DT&V, IND, AVIM, the NGO): reads cases for its purpose.
    Reader(usize),
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    connections: AtomicU64,
    registered: AtomicU64,
    granted: AtomicU64,
    withdrawn: AtomicU64,
    reads: AtomicU64,
    /// Answers other than the ones the mix expects (a read may be refused
    /// for a withdrawn consent; nothing else may fail).
    unexpected: AtomicU64,
    /// What successful reads touched (see [`Sample::cases_read`]).
    read: std::sync::Mutex<Read>,
}

/// The cases and (reader, case) pairs successful reads touched.
#[derive(Default)]
struct Read {
    cases: std::collections::HashSet<String>,
    pairs: std::collections::HashSet<(String, String)>,
}

impl Counters {
    fn read_ok(&self, reader: &str, case_id: &str) {
        self.reads.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut r) = self.read.lock() {
            if !r.cases.contains(case_id) {
                r.cases.insert(case_id.to_string());
            }
            let pair = (reader.to_string(), case_id.to_string());
            if !r.pairs.contains(&pair) {
                r.pairs.insert(pair);
            }
        }
    }

    fn read_counts(&self) -> (u64, u64) {
        self.read
            .lock()
            .map(|r| (r.cases.len() as u64, r.pairs.len() as u64))
            .unwrap_or_default()
    }
}

struct Shared {
    /// Reads and consents draw from the first this many cases.
    read_set: Option<usize>,
    workload: Workload,
    addr: SocketAddr,
    cases: std::sync::Mutex<Vec<String>>,
    counters: Counters,
    /// The first unexpected answer, for the report.
    first_error: std::sync::Mutex<Option<String>>,
}

impl Shared {
    fn case(&self, n: u64) -> Option<String> {
        let cases = self.cases.lock().ok()?;
        let len = self.read_set.map_or(cases.len(), |r| r.min(cases.len()));
        (len > 0).then(|| cases[(n as usize) % len].clone())
    }

    fn unexpected(&self, what: &str, s: &tonic::Status) {
        self.counters.unexpected.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut first) = self.first_error.lock() {
            first.get_or_insert_with(|| format!("{what}: {:?} {}", s.code(), s.message()));
        }
    }
}

pub async fn run(mut a: Args) -> anyhow::Result<()> {
    if a.smoke {
        a.duration = Duration::from_secs(4);
        a.warmup = Duration::from_secs(1);
        a.sample = Duration::from_secs(1);
        a.cases = a.cases.min(5);
        a.rate = a.rate.min(200.0);
    }
    if a.workers < 2 || a.rate <= 0.0 || a.churn == 0 || a.cases == 0 {
        bail!("--workers must be at least 2, --rate, --churn and --cases above 0");
    }
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("node");
    let config = sluis::dev::init::init(&dir, "127.0.0.1:0".parse()?).await?;
    if let Some(n) = a.cache_entries {
        setup::set_setting(&config, "cache_entries", &n.to_string())?;
    }
    crate::procs::use_copy_of_self(tmp.path())?;
    let gateway = Server::gateway(&config, None, &dir, false)?;
    let mut workload = Workload::standard(&dir, Vec::new());
    let say = |s: String| {
        if !a.json {
            eprintln!("{s}");
        }
    };
    say(format!(
        "sluis bench soak on {}: {} s of mixed load at {} req/s, {} workers, a new connection every {} requests, read cache {}",
        report::machine(),
        a.duration.as_secs(),
        a.rate,
        a.workers,
        a.churn,
        a.cache_entries
            .map_or("as the node's default".to_string(), |n| format!(
                "{n} entries"
            ))
    ));
    if let Some(n) = a.read_set {
        say(format!(
            "reads go to the first {n} cases only, consents to the newest"
        ));
    }
    workload.case_ids = setup::populate(gateway.addr, &workload, a.cases).await?;
    let shared = Arc::new(Shared {
        read_set: a.read_set,
        cases: std::sync::Mutex::new(workload.case_ids.clone()),
        workload,
        addr: gateway.addr,
        counters: Counters::default(),
        first_error: std::sync::Mutex::new(None),
    });

    let started = Instant::now();
    let deadline = started + a.duration;
    let per_worker = Duration::from_secs_f64(a.workers as f64 / a.rate);
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..a.workers {
        // One worker in four owns cases; the others read, spread over the
        // four readers of the standard workload.
        let role = if w % 4 == 0 {
            Role::Owner
        } else {
            Role::Reader(w % 4 - 1)
        };
        workers.spawn(worker(
            shared.clone(),
            role,
            w as u64,
            per_worker,
            a.churn,
            deadline,
        ));
    }

    let wal = wal_path(&dir);
    let mut samples = Vec::new();
    let mut next = started;
    say(TABLE_HEADER.to_string());
    while Instant::now() < deadline {
        samples.push(sample(gateway.pid(), &wal, started, &shared.counters)?);
        if !a.json {
            let s = samples.last().expect("just pushed");
            eprintln!("{}", s.row());
        }
        next += a.sample;
        tokio::time::sleep_until(next.into()).await;
    }
    while let Some(r) = workers.join_next().await {
        r??;
    }
    samples.push(sample(gateway.pid(), &wal, started, &shared.counters)?);
    let peak_rss_mib = gateway.peak_rss_kib().map(|k| k as f64 / 1024.0);
    gateway.stop()?;

    let c = &shared.counters;
    let load = LoadTotals {
        seconds: started.elapsed().as_secs_f64(),
        answers: c.requests.load(Ordering::Relaxed),
        connections: c.connections.load(Ordering::Relaxed),
        registered: c.registered.load(Ordering::Relaxed),
        granted: c.granted.load(Ordering::Relaxed),
        withdrawn: c.withdrawn.load(Ordering::Relaxed),
        reads: c.reads.load(Ordering::Relaxed),
        unexpected: c.unexpected.load(Ordering::Relaxed),
    };
    let defaults = sluis::config::DatabaseConfig::default();
    let caps = Caps {
        cache_entries: a.cache_entries.unwrap_or(defaults.cache_entries) as u64,
        cache_mb: defaults.cache_mb,
        remembered_pseudonyms: sluis::gateway::REMEMBERED_PSEUDONYMS as u64,
    };
    let verdict = (!a.smoke).then(|| Verdict::of(&samples, a.warmup.as_secs_f64(), caps));
    let first_error = shared.first_error.lock().ok().and_then(|e| e.clone());
    if a.json {
        let out = Report {
            samples: &samples,
            load: &load,
            peak_rss_mib,
            verdict: verdict.as_ref(),
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_report(&samples, &load, peak_rss_mib, verdict.as_ref(), &a);
    }
    if let Some(e) = first_error {
        bail!(
            "{} requests failed unexpectedly; the first: {e}",
            load.unexpected
        );
    }
    if load.answers == 0 {
        bail!("no request was answered");
    }
    Ok(())
}

/// One worker: a connection as its participant, `churn` requests on it at
/// its share of the rate, then a new connection, until the deadline.
async fn worker(
    shared: Arc<Shared>,
    role: Role,
    seed: u64,
    every: Duration,
    churn: u64,
    deadline: Instant,
) -> anyhow::Result<()> {
    let spec = match role {
        Role::Owner => shared
            .workload
            .clients
            .iter()
            .find(|c| c.participant == OWNER)
            .context("the workload has no case owner")?,
        Role::Reader(i) => shared
            .workload
            .clients
            .iter()
            .filter(|c| c.participant != OWNER)
            .nth(i)
            .context("the workload has fewer than four readers")?,
    }
    .clone();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = seed.wrapping_mul(7919);
    // The consent this owner granted last, withdrawn on its next turn.
    let mut granted: Option<String> = None;
    while Instant::now() < deadline {
        let channel = match setup::connect(shared.addr, &shared.workload, &spec).await {
            Ok(c) => c,
            Err(e) => {
                shared.unexpected("connect", &tonic::Status::unavailable(format!("{e:#}")));
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        shared.counters.connections.fetch_add(1, Ordering::Relaxed);
        let mut c = Clients::new(channel);
        for _ in 0..churn {
            if Instant::now() >= deadline {
                break;
            }
            tick.tick().await;
            n = n.wrapping_add(1);
            match role {
                Role::Owner => owner_step(&shared, &mut c, n, &mut granted).await,
                Role::Reader(_) => read(&shared, &mut c, &spec, n).await,
            }
            shared.counters.requests.fetch_add(1, Ordering::Relaxed);
        }
        // Dropping the clients closes the connection.
    }
    Ok(())
}

/// The owner's mix, in turn: register a case, grant a consent on an
/// existing one, withdraw the consent granted before, read a case.
async fn owner_step(shared: &Shared, c: &mut Clients, n: u64, granted: &mut Option<String>) {
    let actor = Some(OWNER_ACTOR);
    match n % 4 {
        0 => {
            let r = c
                .cases
                .register_case(with_actor(
                    pb::RegisterCaseRequest {
                        request_id: String::new(),
                        data: Some(sample::case_data(1_000_000 + n)),
                    },
                    actor,
                ))
                .await;
            match r {
                Ok(r) => {
                    shared.counters.registered.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut cases) = shared.cases.lock() {
                        cases.push(r.into_inner().case_id);
                    }
                }
                Err(s) => shared.unexpected("RegisterCase", &s),
            }
        }
        1 => {
            // With a fixed read set, consents go to the newest case, so
            // the cases read keep the data they had.
            let case_id = match shared.read_set {
                Some(_) => shared.cases.lock().ok().and_then(|c| c.last().cloned()),
                None => shared.case(n),
            };
            let Some(case_id) = case_id else {
                return;
            };
            let [terms, _] = sample::consents();
            let r = c
                .consents
                .grant_consent(with_actor(
                    terms.request(&case_id, format!("SOAK-{n:08}")),
                    actor,
                ))
                .await;
            match r {
                Ok(r) => {
                    shared.counters.granted.fetch_add(1, Ordering::Relaxed);
                    *granted = r.into_inner().consent.map(|c| c.consent_id);
                }
                Err(s) => shared.unexpected("GrantConsent", &s),
            }
        }
        2 => {
            let Some(consent_id) = granted.take() else {
                return;
            };
            let r = c
                .consents
                .withdraw_consent(with_actor(
                    pb::WithdrawConsentRequest {
                        request_id: String::new(),
                        consent_id,
                        note: "withdrawn by the subject".into(),
                    },
                    actor,
                ))
                .await;
            match r {
                Ok(_) => {
                    shared.counters.withdrawn.fetch_add(1, Ordering::Relaxed);
                }
                Err(s) => shared.unexpected("WithdrawConsent", &s),
            }
        }
        _ => {
            let Some(case_id) = shared.case(n) else {
                return;
            };
            let spec = ClientSpec {
                participant: OWNER.into(),
                cert: PathBuf::new(),
                key: PathBuf::new(),
                purpose: "case_consultation".into(),
                actor: Some(OWNER_ACTOR.into()),
            };
            match c
                .cases
                .get_case(setup::get_case_request(&spec, &case_id))
                .await
            {
                Ok(_) => shared.counters.read_ok(OWNER, &case_id),
                Err(s) => shared.unexpected("GetCase (owner)", &s),
            }
        }
    }
}

/// A reader's request: a case it may or may not receive anything of. A
/// refusal the policy or a withdrawn consent explains is an answer too.
async fn read(shared: &Shared, c: &mut Clients, spec: &ClientSpec, n: u64) {
    let Some(case_id) = shared.case(n) else {
        return;
    };
    match c
        .cases
        .get_case(setup::get_case_request(spec, &case_id))
        .await
    {
        Ok(_) => shared.counters.read_ok(&spec.participant, &case_id),
        Err(s) if s.code() == Code::PermissionDenied => {
            shared.counters.reads.fetch_add(1, Ordering::Relaxed);
        }
        Err(s) => shared.unexpected("GetCase", &s),
    }
}

fn wal_path(node_dir: &Path) -> PathBuf {
    node_dir.join("sluis.db-wal")
}

fn sample(pid: u32, wal: &Path, started: Instant, c: &Counters) -> anyhow::Result<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .context("cannot read the gateway's /proc status (is it still running?)")?;
    let field = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    let wal_bytes = std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0);
    let (cases_read, pairs_read) = c.read_counts();
    Ok(Sample {
        t_s: started.elapsed().as_secs_f64(),
        rss_mib: field("VmRSS:") as f64 / 1024.0,
        fds,
        threads: field("Threads:"),
        wal_mib: wal_bytes as f64 / (1024.0 * 1024.0),
        requests: c.requests.load(Ordering::Relaxed),
        connections: c.connections.load(Ordering::Relaxed),
        cases_read,
        pairs_read,
    })
}

#[derive(Debug, Serialize)]
struct LoadTotals {
    seconds: f64,
    answers: u64,
    connections: u64,
    registered: u64,
    granted: u64,
    withdrawn: u64,
    reads: u64,
    unexpected: u64,
}

/// The node's bounded structures that fill with distinct cases read, and
/// their caps: the read cache (`[database] cache_entries` cases and as many
/// consent lists, within `cache_mb`) and the (reader, pseudonym) pairs the
/// gateway remembers having stored.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Caps {
    pub cache_entries: u64,
    pub cache_mb: u64,
    pub remembered_pseudonyms: u64,
}

impl Caps {
    /// The first sample at which the load has read enough distinct cases
    /// and pairs to fill both (the cache by its entries: at the soak's case
    /// size, ~1 KiB, its bytes bind only far beyond `cache_entries`).
    fn reached_at(&self, samples: &[Sample]) -> Option<f64> {
        samples
            .iter()
            .find(|s| {
                s.cases_read >= self.cache_entries && s.pairs_read >= self.remembered_pseudonyms
            })
            .map(|s| s.t_s)
    }
}

/// Flat or not, per quantity, over the samples after warm-up and after the
/// node's bounded structures are full.
#[derive(Debug, Serialize)]
pub struct Verdict {
    pub caps: Caps,
    /// When the load had filled the caps (`None`: not within the run, and
    /// the verdict covers the samples after warm-up only).
    pub caps_reached_s: Option<f64>,
    /// Where the verdict's window starts.
    pub from_s: f64,
    pub samples_after_warmup: usize,
    pub rss: Trend,
    pub fds: Trend,
    pub threads: Trend,
    pub wal: Trend,
    pub flat: bool,
}

/// A quantity after warm-up: first and last value, least-squares slope per
/// minute, and whether that is flat: the fitted rise over the window stays
/// within `tolerance` (absolute, in the quantity's unit).
#[derive(Debug, Serialize)]
pub struct Trend {
    pub first: f64,
    pub last: f64,
    pub max: f64,
    pub slope_per_min: f64,
    pub tolerance: f64,
    pub flat: bool,
}

impl Trend {
    fn of(points: &[(f64, f64)], tolerance: f64) -> Trend {
        let n = points.len() as f64;
        let (first, last) = match (points.first(), points.last()) {
            (Some(f), Some(l)) => (f.1, l.1),
            _ => (0.0, 0.0),
        };
        let max = points.iter().map(|p| p.1).fold(f64::MIN, f64::max);
        let mean_t = points.iter().map(|p| p.0).sum::<f64>() / n;
        let mean_v = points.iter().map(|p| p.1).sum::<f64>() / n;
        let cov: f64 = points.iter().map(|p| (p.0 - mean_t) * (p.1 - mean_v)).sum();
        let var: f64 = points.iter().map(|p| (p.0 - mean_t).powi(2)).sum();
        let slope = if var > 0.0 { cov / var } else { 0.0 };
        let span =
            points.last().map(|p| p.0).unwrap_or(0.0) - points.first().map(|p| p.0).unwrap_or(0.0);
        Trend {
            first,
            last,
            max,
            slope_per_min: slope * 60.0,
            tolerance,
            flat: slope * span <= tolerance,
        }
    }
}

impl Verdict {
    /// Tolerances: RSS may rise by 10 % of its post-warm-up level (at least
    /// 4 MiB: allocator noise); descriptors by the workers' connections
    /// changing hands (a few); threads by the blocking pool's churn; the
    /// WAL by its checkpoint threshold (a few MiB).
    fn of(samples: &[Sample], warmup_s: f64, caps: Caps) -> Verdict {
        let caps_reached_s = caps.reached_at(samples);
        let from_s = caps_reached_s.map_or(warmup_s, |c| c.max(warmup_s));
        let after: Vec<&Sample> = samples.iter().filter(|s| s.t_s >= from_s).collect();
        let series = |f: &dyn Fn(&Sample) -> f64| -> Vec<(f64, f64)> {
            after.iter().map(|s| (s.t_s, f(s))).collect()
        };
        let rss = series(&|s| s.rss_mib);
        let rss_base = rss.first().map(|p| p.1).unwrap_or(0.0);
        let rss = Trend::of(&rss, (rss_base * 0.1).max(4.0));
        let fds = Trend::of(&series(&|s| s.fds as f64), 8.0);
        let threads = Trend::of(&series(&|s| s.threads as f64), 4.0);
        let wal = Trend::of(&series(&|s| s.wal_mib), 8.0);
        let flat = after.len() >= 3 && rss.flat && fds.flat && threads.flat && wal.flat;
        Verdict {
            caps,
            caps_reached_s,
            from_s,
            samples_after_warmup: after.len(),
            rss,
            fds,
            threads,
            wal,
            flat,
        }
    }
}

#[derive(Serialize)]
struct Report<'a> {
    samples: &'a [Sample],
    load: &'a LoadTotals,
    peak_rss_mib: Option<f64>,
    verdict: Option<&'a Verdict>,
}

fn print_report(
    samples: &[Sample],
    load: &LoadTotals,
    peak_rss_mib: Option<f64>,
    verdict: Option<&Verdict>,
    a: &Args,
) {
    println!("{TABLE_HEADER}");
    for s in samples {
        println!("{}", s.row());
    }
    println!();
    println!(
        "{} answers in {:.0} s ({:.0}/s): {} reads, {} cases registered, {} consents granted, {} withdrawn; {} connections; {} unexpected",
        load.answers,
        load.seconds,
        load.answers as f64 / load.seconds.max(1e-9),
        load.reads,
        load.registered,
        load.granted,
        load.withdrawn,
        load.connections,
        load.unexpected
    );
    if let Some(p) = peak_rss_mib {
        println!("peak RSS {p:.1} MiB");
    }
    let Some(v) = verdict else {
        println!("smoke run: too short for a verdict");
        return;
    };
    let line = |name: &str, unit: &str, t: &Trend| {
        println!(
            "  {name:<8} {:>8.1} → {:>8.1} {unit} (max {:.1}), slope {:+.3} {unit}/min, tolerance {:.1}: {}",
            t.first,
            t.last,
            t.max,
            t.slope_per_min,
            t.tolerance,
            if t.flat { "flat" } else { "RISING" }
        );
    };
    println!(
        "caps: read cache {} cases (and {} MiB), remembered pseudonyms {}",
        v.caps.cache_entries, v.caps.cache_mb, v.caps.remembered_pseudonyms
    );
    match v.caps_reached_s {
        Some(t) => println!(
            "the load had read enough distinct cases and (reader, case) pairs to fill both at {t:.0} s"
        ),
        None => println!(
            "the load did NOT fill both within the run: memory may still be rising towards them, so this run cannot say whether it is flat after them (more --cases, a higher --rate or a longer --duration)"
        ),
    }
    println!(
        "from {:.0} s ({}, {} samples):",
        v.from_s,
        if v.caps_reached_s
            .is_some_and(|c| c >= a.warmup.as_secs_f64())
        {
            "caps full"
        } else if v.caps_reached_s.is_some() {
            "warm-up over, caps full"
        } else {
            "warm-up over"
        },
        v.samples_after_warmup
    );
    line("RSS", "MiB", &v.rss);
    line("fds", "", &v.fds);
    line("threads", "", &v.threads);
    line("WAL", "MiB", &v.wal);
    let after = if v.caps_reached_s.is_some() {
        "after the caps were full"
    } else {
        "after warm-up (caps not full)"
    };
    println!(
        "verdict: {} {after}",
        if v.flat { "flat" } else { "NOT flat" }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rising_series_is_not_flat_and_a_noisy_level_one_is() {
        let rising: Vec<(f64, f64)> = (0..20)
            .map(|i| (i as f64 * 30.0, 40.0 + i as f64))
            .collect();
        assert!(!Trend::of(&rising, 4.0).flat);
        let level: Vec<(f64, f64)> = (0..20)
            .map(|i| (i as f64 * 30.0, 40.0 + if i % 2 == 0 { 1.5 } else { -1.5 }))
            .collect();
        let t = Trend::of(&level, 4.0);
        assert!(t.flat, "{t:?}");
        assert!(t.slope_per_min.abs() < 0.1);
    }

    fn at(t_s: f64, rss_mib: f64, cases_read: u64, pairs_read: u64) -> Sample {
        Sample {
            t_s,
            rss_mib,
            fds: 30,
            threads: 8,
            wal_mib: 30.0,
            requests: 0,
            connections: 0,
            cases_read,
            pairs_read,
        }
    }

    /// Memory rising while the caps fill, then level: flat from the moment
    /// both are full, and not before; a run that never fills them says so.
    #[test]
    fn the_verdict_starts_once_the_caps_are_full() {
        let caps = Caps {
            cache_entries: 100,
            cache_mb: 64,
            remembered_pseudonyms: 400,
        };
        let samples: Vec<Sample> = (0..40)
            .map(|i| {
                let t = i as f64 * 15.0;
                let filling = (i * 20).min(400);
                let rss = 30.0 + filling as f64 / 10.0;
                at(t, rss, filling / 2, filling)
            })
            .collect();
        let v = Verdict::of(&samples, 60.0, caps);
        assert_eq!(v.caps_reached_s, Some(300.0));
        assert_eq!(v.from_s, 300.0);
        assert!(v.flat, "{v:?}");
        let early = Verdict::of(&samples[..10], 60.0, caps);
        assert_eq!(early.caps_reached_s, None);
        assert!(!early.flat, "rising while the caps fill: {early:?}");
    }
}
