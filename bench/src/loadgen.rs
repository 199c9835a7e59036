//! The load generator: `GetCase` over tonic and mutual TLS, N connections,
//! each as one of the workload's participants, in one of two modes.
//!
//! - **Closed loop** (maximum throughput): M requests in flight per
//!   connection; each worker sends its next request when the previous one
//!   is answered. Latency is measured per request, which hides queueing
//!   (coordinated omission), so only its throughput is the headline.
//! - **Open loop** (latency at a fixed rate): requests are scheduled at
//!   fixed intervals from the start, whatever the server does, and each
//!   latency is measured from its *intended* send time, so a stall shows
//!   up in every request it delayed instead of in one. The pacer is an OS
//!   thread (`std::thread::sleep` is precise to tens of microseconds;
//!   tokio's timer has millisecond granularity) that spawns each request
//!   onto the runtime.
//!
//! Only answers completed inside the measured window count (after warm-up);
//! errors are counted, never folded into the latencies.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use serde::Serialize;
use tonic::transport::Channel;

use sluis::rpc::proto::v1::case_service_client::CaseServiceClient;

use crate::report::{self, Summary};
use crate::setup::{self, ClientSpec, Workload};

/// Requests outstanding at once in open-loop mode before further ones are
/// dropped (and counted): a server that stopped answering must not make the
/// load generator eat all memory.
const MAX_OUTSTANDING: usize = 20_000;

#[derive(Clone, Copy, Debug, Serialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum Mode {
    Closed { in_flight: usize },
    Open { rate: f64 },
}

/// How hard and how long each run loads a server: the options every
/// command that loads one shares. The defaults of `--duration` and
/// `--warmup` are the load generator's; `compare` and `scale`, which make
/// many runs, set shorter ones (`mut_arg` on their arguments).
#[derive(clap::Args, Clone, Debug)]
pub struct Load {
    /// TLS connections (HTTP/2), spread over the participants.
    #[arg(long, default_value_t = 10)]
    pub connections: usize,
    /// Closed loop: requests in flight per connection.
    #[arg(long, default_value_t = 4)]
    pub in_flight: usize,
    /// Measured time of each run (after warm-up).
    #[arg(long, default_value = "10s", value_parser = report::parse_duration)]
    pub duration: Duration,
    /// Warm-up before each run, not counted.
    #[arg(long, default_value = "2s", value_parser = report::parse_duration)]
    pub warmup: Duration,
}

impl Load {
    /// One run: closed loop without a rate, open loop at `rate` with one.
    /// A request not answered within 10 s counts as an error.
    pub fn plan(&self, rate: Option<f64>, server_pid: Option<u32>) -> Plan {
        Plan {
            mode: match rate {
                Some(rate) => Mode::Open { rate },
                None => Mode::Closed {
                    in_flight: self.in_flight,
                },
            },
            connections: self.connections,
            warmup: self.warmup,
            duration: self.duration,
            timeout: Duration::from_secs(10),
            server_pid,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub mode: Mode,
    pub connections: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// A request not answered by then is an error.
    pub timeout: Duration,
    /// The server's process, to read its CPU time over the measured window.
    pub server_pid: Option<u32>,
}

/// What one run measured.
pub struct Outcome {
    pub hist: Histogram<u64>,
    pub errors: u64,
    pub dropped: u64,
    pub seconds: f64,
    pub first_error: Option<String>,
    /// CPU seconds this process (the load generator) used in the window.
    pub client_cpu_s: Option<f64>,
    /// CPU seconds the server used in the window (when its pid is known).
    pub server_cpu_s: Option<f64>,
}

impl Outcome {
    pub fn summary(&self) -> Summary {
        Summary::new(&self.hist, self.errors, self.dropped, self.seconds)
    }
}

/// Per-worker tallies, merged at the end.
struct Tally {
    hist: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            hist: report::histogram(),
            errors: 0,
            first_error: None,
        }
    }

    fn add<T>(
        &mut self,
        result: &Result<Result<T, tonic::Status>, tokio::time::error::Elapsed>,
        latency: Duration,
        progress: &Progress,
    ) {
        match result {
            Ok(Ok(_)) => {
                report::record(&mut self.hist, latency);
                progress.done.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(status)) => {
                self.errors += 1;
                progress.errors.fetch_add(1, Ordering::Relaxed);
                if self.first_error.is_none() {
                    self.first_error = Some(format!("{:?}: {}", status.code(), status.message()));
                }
            }
            Err(_) => {
                self.errors += 1;
                progress.errors.fetch_add(1, Ordering::Relaxed);
                if self.first_error.is_none() {
                    self.first_error = Some("timed out".into());
                }
            }
        }
    }

    fn merge(&mut self, other: Tally) {
        let _ = self.hist.add(&other.hist);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// The progress line on stderr: one update a second, cleared at the end.
pub struct Progress {
    label: String,
    total: Duration,
    done: AtomicU64,
    errors: AtomicU64,
    stop: AtomicBool,
    enabled: bool,
}

impl Progress {
    pub fn new(label: String, total: Duration, enabled: bool) -> Arc<Progress> {
        Arc::new(Progress {
            label,
            total,
            done: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            enabled,
        })
    }

    fn start(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        if !self.enabled {
            return None;
        }
        let p = self.clone();
        Some(tokio::spawn(async move {
            let started = Instant::now();
            let mut last = 0u64;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            while !p.stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let done = p.done.load(Ordering::Relaxed);
                eprint!(
                    "\r  {:<34} {:>4.0}s/{:.0}s {:>9} req/s  errors {:<6}",
                    p.label,
                    started.elapsed().as_secs_f64(),
                    p.total.as_secs_f64(),
                    report::thousands((done - last) as f64),
                    p.errors.load(Ordering::Relaxed)
                );
                last = done;
            }
        }))
    }

    async fn finish(&self, task: Option<tokio::task::JoinHandle<()>>) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = task {
            t.abort();
            let _ = t.await;
            eprint!("\r{:<90}\r", "");
        }
    }
}

/// A connection and the participant it calls as.
struct Conn {
    client: CaseServiceClient<Channel>,
    spec: Arc<ClientSpec>,
}

async fn connect_all(addr: SocketAddr, workload: &Workload, n: usize) -> anyhow::Result<Vec<Conn>> {
    if workload.clients.is_empty() || workload.case_ids.is_empty() {
        bail!("the workload needs at least one client and one case");
    }
    let mut conns = Vec::with_capacity(n);
    for i in 0..n.max(1) {
        let spec = &workload.clients[i % workload.clients.len()];
        let channel = setup::connect(addr, workload, spec).await?;
        conns.push(Conn {
            client: CaseServiceClient::new(channel),
            spec: Arc::new(spec.clone()),
        });
    }
    Ok(conns)
}

/// Runs one measurement against `addr`.
pub async fn run(
    addr: SocketAddr,
    workload: &Workload,
    plan: &Plan,
    progress: Arc<Progress>,
) -> anyhow::Result<Outcome> {
    let conns = connect_all(addr, workload, plan.connections).await?;
    let cases: Arc<Vec<String>> = Arc::new(workload.case_ids.clone());
    // One request per connection first: the HTTP/2 connection is up and
    // both sides have done their lazy set-up before anything is timed.
    for c in &conns {
        let mut client = c.client.clone();
        client
            .get_case(setup::get_case_request(&c.spec, &cases[0]))
            .await
            .with_context(|| format!("first request as {} failed", c.spec.participant))?;
    }
    let ticker = progress.start();
    let result = match plan.mode {
        Mode::Closed { in_flight } => closed(conns, cases, plan, in_flight, &progress).await,
        Mode::Open { rate } => open(conns, cases, plan, rate, &progress).await,
    };
    progress.finish(ticker).await;
    result
}

/// [`run`] with a progress line labelled `label` (unless `quiet`), warning
/// on stderr when the server (`name`) answered with errors.
pub async fn measure(
    addr: SocketAddr,
    workload: &Workload,
    plan: &Plan,
    name: &str,
    label: String,
    quiet: bool,
) -> anyhow::Result<Outcome> {
    let progress = Progress::new(label, plan.warmup + plan.duration, !quiet);
    let out = run(addr, workload, plan, progress).await?;
    if out.errors > 0 {
        eprintln!(
            "warning: {} errors against the {name} ({})",
            out.errors,
            out.first_error.as_deref().unwrap_or("?")
        );
    }
    Ok(out)
}

async fn closed(
    conns: Vec<Conn>,
    cases: Arc<Vec<String>>,
    plan: &Plan,
    in_flight: usize,
    progress: &Arc<Progress>,
) -> anyhow::Result<Outcome> {
    let start = Instant::now();
    let measure_from = start + plan.warmup;
    let end = measure_from + plan.duration;
    let cpu_before = Arc::new(Mutex::new(None::<(Option<f64>, Option<f64>)>));
    let server_pid = plan.server_pid;
    let mut tasks = tokio::task::JoinSet::new();
    let workers = conns.len() * in_flight.max(1);
    for (i, conn) in conns.iter().enumerate() {
        for w in 0..in_flight.max(1) {
            let mut client = conn.client.clone();
            let spec = conn.spec.clone();
            let cases = cases.clone();
            let progress = progress.clone();
            let timeout = plan.timeout;
            // Workers start at different cases so they do not march in step.
            let mut k = ((i * in_flight + w) * cases.len()) / workers;
            tasks.spawn(async move {
                let mut tally = Tally::new();
                loop {
                    let sent = Instant::now();
                    if sent >= end {
                        break;
                    }
                    let r = tokio::time::timeout(
                        timeout,
                        client.get_case(setup::get_case_request(&spec, &cases[k])),
                    )
                    .await;
                    k = (k + 1) % cases.len();
                    let done = Instant::now();
                    if done >= measure_from && done < end {
                        tally.add(&r, done - sent, &progress);
                    }
                }
                tally
            });
        }
    }
    // CPU time of the load generator over the measured window.
    let cpu = cpu_before.clone();
    let window = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from.into()).await;
        let before = cpu_pair(server_pid);
        if let Ok(mut c) = cpu.lock() {
            *c = Some(before);
        }
        tokio::time::sleep_until(end.into()).await;
        cpu_pair(server_pid)
    });
    let mut total = Tally::new();
    while let Some(t) = tasks.join_next().await {
        total.merge(t?);
    }
    let after = window.await.ok();
    let before = cpu_before.lock().ok().and_then(|c| *c);
    let (client_cpu_s, server_cpu_s) = cpu_used(before, after);
    Ok(Outcome {
        hist: total.hist,
        errors: total.errors,
        dropped: 0,
        seconds: plan.duration.as_secs_f64(),
        first_error: total.first_error,
        client_cpu_s,
        server_cpu_s,
    })
}

async fn open(
    conns: Vec<Conn>,
    cases: Arc<Vec<String>>,
    plan: &Plan,
    rate: f64,
    progress: &Arc<Progress>,
) -> anyhow::Result<Outcome> {
    if !(rate.is_finite() && rate > 0.0) {
        bail!("the rate must be a positive number of requests per second");
    }
    let handle = tokio::runtime::Handle::current();
    let tallies: Arc<Vec<Mutex<Tally>>> =
        Arc::new((0..conns.len()).map(|_| Mutex::new(Tally::new())).collect());
    let outstanding = Arc::new(AtomicUsize::new(0));
    let start = Instant::now() + Duration::from_millis(20);
    let measure_from = start + plan.warmup;
    let end = measure_from + plan.duration;
    let timeout = plan.timeout;
    let progress_p = progress.clone();
    let outstanding_p = outstanding.clone();
    let tallies_p = tallies.clone();
    let server_pid = plan.server_pid;
    let pacer = std::thread::spawn(move || {
        let mut dropped = 0u64;
        let mut cpu_before = None;
        let mut i: u64 = 0;
        loop {
            let intended = start + Duration::from_secs_f64(i as f64 / rate);
            if intended >= end {
                break;
            }
            let now = Instant::now();
            if intended > now {
                std::thread::sleep(intended - now);
            }
            if cpu_before.is_none() && intended >= measure_from {
                cpu_before = Some(cpu_pair(server_pid));
            }
            let c = (i as usize) % conns.len();
            i += 1;
            if outstanding_p.load(Ordering::Relaxed) >= MAX_OUTSTANDING {
                if intended >= measure_from {
                    dropped += 1;
                }
                continue;
            }
            outstanding_p.fetch_add(1, Ordering::Relaxed);
            let mut client = conns[c].client.clone();
            let request = setup::get_case_request(&conns[c].spec, &cases[i as usize % cases.len()]);
            let outstanding = outstanding_p.clone();
            let tallies = tallies_p.clone();
            let progress = progress_p.clone();
            handle.spawn(async move {
                let r = tokio::time::timeout(timeout, client.get_case(request)).await;
                let done = Instant::now();
                if intended >= measure_from
                    && let Ok(mut t) = tallies[c].lock()
                {
                    // From the intended send time: a late start is latency.
                    t.add(&r, done - intended, &progress);
                }
                outstanding.fetch_sub(1, Ordering::Relaxed);
            });
        }
        (dropped, cpu_before)
    });
    let (dropped, cpu_before) = tokio::task::spawn_blocking(move || pacer.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the pacer thread panicked"))?;
    let cpu_after = Some(cpu_pair(server_pid));
    // Let the last requests finish; one that does not is an error.
    let give_up = Instant::now() + timeout + Duration::from_secs(1);
    while outstanding.load(Ordering::Relaxed) > 0 && Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut total = Tally::new();
    for t in tallies.iter() {
        if let Ok(mut t) = t.lock() {
            let t = std::mem::replace(&mut *t, Tally::new());
            total.merge(t);
        }
    }
    total.errors += outstanding.load(Ordering::Relaxed) as u64;
    let (client_cpu_s, server_cpu_s) = cpu_used(cpu_before, cpu_after);
    Ok(Outcome {
        hist: total.hist,
        errors: total.errors,
        dropped,
        seconds: plan.duration.as_secs_f64(),
        first_error: total.first_error,
        client_cpu_s,
        server_cpu_s,
    })
}

/// CPU seconds so far of (this process, the server).
fn cpu_pair(server_pid: Option<u32>) -> (Option<f64>, Option<f64>) {
    (
        crate::procs::cpu_seconds(None),
        server_pid.and_then(|p| crate::procs::cpu_seconds(Some(p))),
    )
}

type CpuPair = (Option<f64>, Option<f64>);

/// CPU seconds used between two samples, (client, server).
fn cpu_used(before: Option<CpuPair>, after: Option<CpuPair>) -> (Option<f64>, Option<f64>) {
    let (Some(b), Some(a)) = (before, after) else {
        return (None, None);
    };
    (
        b.0.zip(a.0).map(|(b, a)| a - b),
        b.1.zip(a.1).map(|(b, a)| a - b),
    )
}

#[derive(clap::Args, Debug)]
pub struct CliArgs {
    /// Workload file from `bench setup` (target, CA, client certificates,
    /// purposes, cases); the flags below override or replace it.
    #[arg(long)]
    pub workload: Option<PathBuf>,
    /// Node address (127.0.0.1 only).
    #[arg(long)]
    pub target: Option<SocketAddr>,
    /// CA certificate (PEM) that issued the node's certificate.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM); repeat together with --key for several
    /// participants (connections go round-robin over them).
    #[arg(long)]
    pub cert: Vec<PathBuf>,
    /// Client key (PEM), one per --cert.
    #[arg(long)]
    pub key: Vec<PathBuf>,
    /// Purpose per --cert, or one for all.
    #[arg(long)]
    pub purpose: Vec<String>,
    /// `x-sluis-actor` to send with every request.
    #[arg(long)]
    pub actor: Option<String>,
    /// Case to read; repeat for several (read in turn).
    #[arg(long = "case-id")]
    pub case_ids: Vec<String>,
    /// Name the node's certificate is checked against.
    #[arg(long, default_value = "localhost")]
    pub server_name: String,
    /// Closed loop, as fast as answers come (the default without --rate).
    #[arg(long, conflicts_with = "rate")]
    pub closed: bool,
    /// Open loop at this many requests per second.
    #[arg(long)]
    pub rate: Option<f64>,
    #[command(flatten)]
    pub load: Load,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
    /// Pin the load generator to these CPUs (taskset list).
    #[arg(long)]
    pub cpus: Option<String>,
}

fn cli_workload(a: &CliArgs) -> anyhow::Result<Workload> {
    let mut w = match &a.workload {
        Some(p) => Workload::load(p)?,
        None => Workload {
            target: None,
            server_name: a.server_name.clone(),
            ca: PathBuf::new(),
            clients: vec![],
            case_ids: vec![],
        },
    };
    if let Some(t) = a.target {
        w.target = Some(t);
    }
    if let Some(ca) = &a.ca {
        w.ca = ca.clone();
    }
    if a.workload.is_none() || a.server_name != "localhost" {
        w.server_name = a.server_name.clone();
    }
    if a.cert.len() != a.key.len() {
        bail!("give one --key per --cert");
    }
    if !a.cert.is_empty() {
        if a.purpose.is_empty() || (a.purpose.len() != 1 && a.purpose.len() != a.cert.len()) {
            bail!("give one --purpose, or one per --cert");
        }
        w.clients = a
            .cert
            .iter()
            .zip(&a.key)
            .enumerate()
            .map(|(i, (cert, key))| ClientSpec {
                participant: format!("client-{}", i + 1),
                cert: cert.clone(),
                key: key.clone(),
                purpose: a.purpose[i.min(a.purpose.len() - 1)].clone(),
                actor: a.actor.clone(),
            })
            .collect();
    } else if let Some(actor) = &a.actor {
        for c in &mut w.clients {
            c.actor = Some(actor.clone());
        }
    }
    if !a.case_ids.is_empty() {
        w.case_ids = a.case_ids.clone();
    }
    if w.ca.as_os_str().is_empty() || w.clients.is_empty() || w.case_ids.is_empty() {
        bail!(
            "say what to load: --workload FILE (from `bench setup`), or --target, --ca, --cert/--key, --purpose and --case-id"
        );
    }
    Ok(w)
}

/// `bench loadgen`.
pub async fn run_cli(a: CliArgs) -> anyhow::Result<()> {
    let workload = cli_workload(&a)?;
    let Some(target) = workload.target else {
        bail!("no --target (and none in the workload file)");
    };
    if !target.ip().is_loopback() {
        bail!("this load generator only loads 127.0.0.1 (a machine you measure on)");
    }
    let plan = a.load.plan(a.rate, None);
    let mode = plan.mode;
    let label = match mode {
        Mode::Closed { in_flight } => {
            format!("closed {}x{in_flight}", plan.connections)
        }
        Mode::Open { rate } => format!("open {rate:.0}/s"),
    };
    let progress = Progress::new(label.clone(), plan.warmup + plan.duration, !a.quiet);
    let outcome = run(target, &workload, &plan, progress).await?;
    let summary = outcome.summary();
    if a.json {
        let out = serde_json::json!({
            "target": target.to_string(),
            "plan": { "mode": mode, "connections": plan.connections,
                      "warmup_s": plan.warmup.as_secs_f64(), "duration_s": plan.duration.as_secs_f64() },
            "participants": workload.clients.iter().map(|c| c.participant.clone()).collect::<Vec<_>>(),
            "result": summary,
            "client_cpu_s": outcome.client_cpu_s,
            "first_error": outcome.first_error,
            "machine": report::machine(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("{}", report::header(""));
        println!("{}", report::row(&label, &summary));
        if let Some(e) = &outcome.first_error {
            println!("first error: {e}");
        }
    }
    Ok(())
}
