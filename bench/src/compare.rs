//! `bench compare`: the gateway against a bare tonic mTLS server returning
//! the same bytes, side by side in one run.
//!
//! Both servers run at once as pinned child processes; the load generator
//! loads one at a time, alternating, in rounds ordered ABBA (gateway first
//! in odd rounds, baseline first in even ones) so that a machine drifting
//! during the run — a neighbour waking up, the page cache, thermal limits —
//! touches both sides alike. Each round measures maximum throughput
//! (closed loop) and then latency at one or more fixed rates (open loop),
//! the same for both. The headline ratio is the median of the per-round
//! ratios; the added latency is that at the first rate given.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use prost::Message;
use serde::Serialize;

use sluis::rpc::proto::v1 as pb;

use crate::baseline::Answers;
use crate::loadgen::{self, Load, Mode};
use crate::procs::{Pinning, Server};
use crate::report::{self, Rate, Summary};
use crate::setup::{self, Workload};

/// The bar from the product brief.
const BAR_THROUGHPUT: f64 = 0.5;
const BAR_ADDED_P50_MS: f64 = 0.3;
const BAR_ADDED_P99_MS: f64 = 2.0;

#[derive(clap::Args, Debug)]
#[command(
    mut_arg("duration", |a| a.default_value("5s")),
    mut_arg("warmup", |a| a.default_value("1s"))
)]
pub struct Args {
    #[command(flatten)]
    pub load: Load,
    /// Rounds; each loads both servers closed-loop and then open-loop.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Open-loop rates in requests/s, comma-separated; "auto" is a quarter
    /// of the gateway's closed-loop throughput in round 1. Both servers get
    /// the same rates; the verdict uses the first.
    #[arg(long, value_delimiter = ',', default_value = "auto", value_parser = report::parse_rate)]
    pub rate: Vec<Rate>,
    /// Cases registered (with consents) before the runs.
    #[arg(long, default_value_t = 100)]
    pub cases: usize,
    /// Print one JSON object (the progress line still goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
    /// A run of a few seconds that only shows everything starts and answers
    /// (for CI): 1 round of 0.5 s, 5 cases. Its figures mean nothing.
    #[arg(long)]
    pub smoke: bool,
    /// Run the gateway with OpenTelemetry on: spans and metrics exported
    /// over OTLP/gRPC to a sink in the gateway's own process (metrics every
    /// 10 s, the default), to measure what exporting costs.
    #[arg(long)]
    pub otlp: bool,
    /// Keep the node's folder (database, logs) here instead of a temporary one.
    #[arg(long)]
    pub keep: Option<PathBuf>,
    #[command(flatten)]
    pub pinning: Pinning,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Target {
    Gateway,
    Baseline,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Gateway => "gateway",
            Target::Baseline => "baseline",
        }
    }
}

#[derive(Serialize)]
struct Run {
    target: Target,
    mode: Mode,
    round: usize,
    #[serde(flatten)]
    summary: Summary,
    server_cpu_s: Option<f64>,
    client_cpu_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_error: Option<String>,
}

/// All rounds of one (target, mode), merged.
#[derive(Serialize)]
struct Aggregate {
    /// Median over rounds of req/s.
    median_req_per_s: f64,
    per_round_req_per_s: Vec<f64>,
    /// Latencies over all rounds' requests.
    merged: Summary,
    /// Server CPU time per answered request, microseconds.
    server_cpu_us_per_req: Option<f64>,
    /// Server CPU use over the runs, in CPUs (1.0 = one core busy).
    server_cpus_busy: Option<f64>,
    /// Load generator CPU use, in CPUs.
    client_cpus_busy: Option<f64>,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn aggregate(
    runs: &[Run],
    hists: &[hdrhistogram::Histogram<u64>],
    target: Target,
    rate: Option<f64>,
) -> Aggregate {
    let mut merged = report::histogram();
    let mut errors = 0;
    let mut dropped = 0;
    let mut seconds = 0.0;
    let mut per_round = Vec::new();
    let mut server_cpu = Some(0.0);
    let mut client_cpu = Some(0.0);
    for (r, h) in runs.iter().zip(hists) {
        let run_rate = match r.mode {
            Mode::Open { rate } => Some(rate),
            Mode::Closed { .. } => None,
        };
        if r.target != target || run_rate != rate {
            continue;
        }
        let _ = merged.add(h);
        errors += r.summary.errors;
        dropped += r.summary.dropped;
        seconds += r.summary.seconds;
        per_round.push(r.summary.req_per_s);
        server_cpu = server_cpu.zip(r.server_cpu_s).map(|(a, b)| a + b);
        client_cpu = client_cpu.zip(r.client_cpu_s).map(|(a, b)| a + b);
    }
    let merged = Summary::new(&merged, errors, dropped, seconds);
    let requests = merged.requests.max(1) as f64;
    Aggregate {
        median_req_per_s: median(per_round.clone()),
        per_round_req_per_s: per_round,
        server_cpu_us_per_req: server_cpu.map(|c| c * 1e6 / requests),
        server_cpus_busy: server_cpu.map(|c| c / seconds.max(1e-9)),
        client_cpus_busy: client_cpu.map(|c| c / seconds.max(1e-9)),
        merged,
    }
}

/// Both servers at one fixed rate.
#[derive(Serialize)]
struct AtRate {
    rate: f64,
    gateway: Aggregate,
    baseline: Aggregate,
    added_p50_ms: f64,
    added_p90_ms: f64,
    added_p99_ms: f64,
}

#[derive(Serialize)]
struct Verdict {
    /// Median of per-round gateway/baseline closed-loop throughput.
    throughput_ratio: f64,
    throughput_ratio_per_round: Vec<f64>,
    /// The (first) fixed rate the added latency is judged at.
    open_loop_rate: f64,
    added_p50_ms: f64,
    added_p90_ms: f64,
    added_p99_ms: f64,
    meets_throughput_bar: bool,
    meets_p50_bar: bool,
    meets_p99_bar: bool,
}

#[derive(Serialize)]
struct Report {
    machine: report::Machine,
    server_cpus: Option<String>,
    client_cpus: Option<String>,
    cases: usize,
    participants: Vec<String>,
    /// Encoded GetCaseResponse size per participant (both servers send it).
    answer_bytes: Vec<(String, usize)>,
    connections: usize,
    in_flight: usize,
    rounds: usize,
    warmup_s: f64,
    duration_s: f64,
    runs: Vec<Run>,
    gateway_closed: Aggregate,
    baseline_closed: Aggregate,
    fixed_rates: Vec<AtRate>,
    verdict: Verdict,
    gateway_peak_rss_mib: Option<f64>,
    baseline_peak_rss_mib: Option<f64>,
}

fn say(quiet_json: bool, msg: impl AsRef<str>) {
    // With --json, stdout is for the object only.
    if quiet_json {
        eprintln!("{}", msg.as_ref());
    } else {
        println!("{}", msg.as_ref());
    }
}

pub async fn run(mut a: Args, cpus: crate::procs::Cpus) -> anyhow::Result<()> {
    let crate::procs::Cpus {
        server: server_cpus,
        client: client_cpus,
    } = cpus;
    if a.smoke {
        a.load.duration = Duration::from_millis(500);
        a.load.warmup = Duration::from_millis(200);
        a.rounds = 1;
        a.cases = 5;
        a.load.connections = a.load.connections.min(5);
        a.load.in_flight = a.load.in_flight.min(2);
        if a.rate == [Rate::Auto] {
            a.rate = vec![Rate::PerSecond(200.0)];
        }
    }
    // None: auto, decided after the first closed-loop runs.
    let mut rates: Vec<Option<f64>> = a.rate.iter().map(|r| r.fixed()).collect();
    if a.rounds == 0 || a.load.connections == 0 || a.load.in_flight == 0 || a.cases == 0 {
        bail!("--rounds, --connections, --in-flight and --cases must be at least 1");
    }
    let machine = report::machine();
    let tmp = tempfile::tempdir()?;
    let base = match &a.keep {
        Some(d) => d.clone(),
        None => tmp.path().to_path_buf(),
    };
    let dir = base.join("node");
    let j = a.json;
    say(j, format!("sluis bench compare on {machine}"));
    if a.otlp {
        say(
            j,
            "gateway exporting spans and metrics over OTLP to an in-process sink",
        );
    }
    say(
        j,
        format!(
            "servers on CPUs {}, load generator on CPUs {}",
            server_cpus.as_deref().unwrap_or("(unpinned)"),
            client_cpus.as_deref().unwrap_or("(unpinned)")
        ),
    );

    let config = sluis::dev::init::init(&dir, "127.0.0.1:0".parse()?).await?;
    crate::procs::use_copy_of_self(&base)?;
    let gateway = Server::gateway(&config, server_cpus.as_deref(), &dir, a.otlp)?;
    let mut workload = Workload::standard(&dir, Vec::new());
    say(
        j,
        format!(
            "registering {} cases with consents through the gateway…",
            a.cases
        ),
    );
    workload.case_ids = setup::populate(gateway.addr, &workload, a.cases).await?;
    let answers = setup::capture_answers(gateway.addr, &workload).await?;
    let answers_path = dir.join("baseline-answers.json");
    std::fs::write(
        &answers_path,
        serde_json::to_string(&Answers::new(&answers))?,
    )?;
    let baseline = Server::baseline(&config, &answers_path, server_cpus.as_deref(), &dir)?;
    // The baseline must send what the gateway sends, size for size.
    let mut answer_bytes = Vec::new();
    for (spec, (who, gw)) in workload.clients.iter().zip(&answers) {
        let channel = setup::connect(baseline.addr, &workload, spec).await?;
        let mut c = pb::case_service_client::CaseServiceClient::new(channel);
        let b = c
            .get_case(setup::get_case_request(spec, &workload.case_ids[0]))
            .await?
            .into_inner();
        if b.encoded_len() != gw.encoded_len() {
            bail!(
                "the baseline answers {who} with {} bytes, the gateway with {}",
                b.encoded_len(),
                gw.encoded_len()
            );
        }
        say(
            j,
            format!(
                "  {who:<22} {:<9} {:>5} bytes: {}",
                spec.purpose.split('_').next().unwrap_or(""),
                gw.encoded_len(),
                setup::category_names(&gw.released)
            ),
        );
        answer_bytes.push((who.clone(), gw.encoded_len()));
    }

    let mut runs: Vec<Run> = Vec::new();
    let mut hists = Vec::new();
    let total_runs = a.rounds * 2 * (1 + rates.len());
    for round in 1..=a.rounds {
        let order = if round % 2 == 1 {
            [Target::Gateway, Target::Baseline]
        } else {
            [Target::Baseline, Target::Gateway]
        };
        // Slot 0 is the closed loop, slot k the k-th fixed rate.
        for slot in 0..=rates.len() {
            let rate = match slot {
                0 => None,
                k => Some(*rates[k - 1].get_or_insert_with(|| {
                    // Auto, decided once from round 1's closed loop and
                    // kept for every later round.
                    let gw = runs
                        .iter()
                        .find(|r| r.target == Target::Gateway)
                        .map_or(400.0, |r| r.summary.req_per_s);
                    round_rate(gw / 4.0)
                })),
            };
            for target in order {
                let server = match target {
                    Target::Gateway => &gateway,
                    Target::Baseline => &baseline,
                };
                let plan = a.load.plan(rate, Some(server.pid()));
                let mode = plan.mode;
                let label = format!(
                    "[{}/{total_runs}] {} {}",
                    runs.len() + 1,
                    target.name(),
                    match mode {
                        Mode::Closed { .. } => "closed loop".to_string(),
                        Mode::Open { rate } => format!("at {rate:.0}/s"),
                    }
                );
                let out =
                    loadgen::measure(server.addr, &workload, &plan, target.name(), label, a.quiet)
                        .await?;
                let summary = out.summary();
                runs.push(Run {
                    target,
                    mode,
                    round,
                    summary,
                    server_cpu_s: out.server_cpu_s,
                    client_cpu_s: out.client_cpu_s,
                    first_error: out.first_error,
                });
                hists.push(out.hist);
            }
        }
    }
    let gateway_rss = gateway.peak_rss_kib().map(|k| k as f64 / 1024.0);
    let baseline_rss = baseline.peak_rss_kib().map(|k| k as f64 / 1024.0);
    gateway.stop()?;
    baseline.stop()?;

    let gateway_closed = aggregate(&runs, &hists, Target::Gateway, None);
    let baseline_closed = aggregate(&runs, &hists, Target::Baseline, None);
    let mut fixed_rates = Vec::new();
    for rate in rates.iter().flatten().copied() {
        let gateway = aggregate(&runs, &hists, Target::Gateway, Some(rate));
        let baseline = aggregate(&runs, &hists, Target::Baseline, Some(rate));
        fixed_rates.push(AtRate {
            rate,
            added_p50_ms: gateway.merged.p50_ms - baseline.merged.p50_ms,
            added_p90_ms: gateway.merged.p90_ms - baseline.merged.p90_ms,
            added_p99_ms: gateway.merged.p99_ms - baseline.merged.p99_ms,
            gateway,
            baseline,
        });
    }
    let per_round: Vec<f64> = gateway_closed
        .per_round_req_per_s
        .iter()
        .zip(&baseline_closed.per_round_req_per_s)
        .map(|(g, b)| if *b > 0.0 { g / b } else { 0.0 })
        .collect();
    let ratio = median(per_round.clone());
    let first = fixed_rates.first();
    let added_p50 = first.map_or(0.0, |f| f.added_p50_ms);
    let added_p90 = first.map_or(0.0, |f| f.added_p90_ms);
    let added_p99 = first.map_or(0.0, |f| f.added_p99_ms);
    let verdict = Verdict {
        throughput_ratio: ratio,
        throughput_ratio_per_round: per_round,
        open_loop_rate: first.map_or(0.0, |f| f.rate),
        added_p50_ms: added_p50,
        added_p90_ms: added_p90,
        added_p99_ms: added_p99,
        meets_throughput_bar: ratio >= BAR_THROUGHPUT,
        meets_p50_bar: added_p50 <= BAR_ADDED_P50_MS,
        meets_p99_bar: added_p99 <= BAR_ADDED_P99_MS,
    };
    let report = Report {
        machine,
        server_cpus,
        client_cpus,
        cases: a.cases,
        participants: workload
            .clients
            .iter()
            .map(|c| c.participant.clone())
            .collect(),
        answer_bytes,
        connections: a.load.connections,
        in_flight: a.load.in_flight,
        rounds: a.rounds,
        warmup_s: a.load.warmup.as_secs_f64(),
        duration_s: a.load.duration.as_secs_f64(),
        runs,
        gateway_closed,
        baseline_closed,
        fixed_rates,
        verdict,
        gateway_peak_rss_mib: gateway_rss,
        baseline_peak_rss_mib: baseline_rss,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report, &a);
    }
    if a.smoke {
        let answered =
            report.gateway_closed.merged.requests > 0 && report.baseline_closed.merged.requests > 0;
        if !answered {
            bail!("smoke run: a server answered nothing");
        }
    }
    Ok(())
}

/// Two significant digits: a rate people can repeat with --rate.
fn round_rate(r: f64) -> f64 {
    if r < 10.0 {
        return r.max(1.0).round();
    }
    let magnitude = 10f64.powi(r.log10().floor() as i32 - 1);
    (r / magnitude).floor() * magnitude
}

fn print_table(r: &Report, a: &Args) {
    let fmt_cpu = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.0}"));
    let fmt_busy = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{:.0}%", v * 100.0));
    println!();
    println!(
        "{} rounds × {:.1} s per run ({:.1} s warm-up); closed loop {} connections × {} in flight; fixed rates over {} connections",
        r.rounds, r.duration_s, r.warmup_s, r.connections, r.in_flight, r.connections
    );
    println!();
    println!(
        "{} {:>9} {:>9} {:>9}",
        report::header(""),
        "CPU µs/req",
        "server CPU",
        "loadgen CPU"
    );
    let mut rows = vec![
        ("gateway  closed loop".to_string(), &r.gateway_closed),
        ("baseline closed loop".to_string(), &r.baseline_closed),
    ];
    for f in &r.fixed_rates {
        rows.push((format!("gateway  at {:.0}/s", f.rate), &f.gateway));
        rows.push((format!("baseline at {:.0}/s", f.rate), &f.baseline));
    }
    for (label, agg) in rows {
        let mut s = agg.merged.clone();
        s.req_per_s = agg.median_req_per_s;
        println!(
            "{} {:>10} {:>10} {:>10}",
            report::row(&label, &s),
            fmt_cpu(agg.server_cpu_us_per_req),
            fmt_busy(agg.server_cpus_busy),
            fmt_busy(agg.client_cpus_busy)
        );
    }
    let rounds: Vec<String> = r
        .verdict
        .throughput_ratio_per_round
        .iter()
        .map(|x| format!("{:.0}%", x * 100.0))
        .collect();
    let mark = |ok: bool| if ok { "meets" } else { "MISSES" };
    println!();
    println!(
        "throughput gateway/baseline: {:.1}% (per round: {}) — {} the bar of ≥ {:.0}%",
        r.verdict.throughput_ratio * 100.0,
        rounds.join(", "),
        mark(r.verdict.meets_throughput_bar),
        BAR_THROUGHPUT * 100.0
    );
    for f in &r.fixed_rates {
        println!(
            "added latency at {:.0} req/s: p50 {:+.3} ms ({} ≤ {BAR_ADDED_P50_MS} ms), p90 {:+.3} ms, p99 {:+.3} ms ({} ≤ {BAR_ADDED_P99_MS} ms)",
            f.rate,
            f.added_p50_ms,
            mark(f.added_p50_ms <= BAR_ADDED_P50_MS),
            f.added_p90_ms,
            f.added_p99_ms,
            mark(f.added_p99_ms <= BAR_ADDED_P99_MS),
        );
    }
    let mib = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.1} MiB"));
    println!(
        "peak RSS: gateway {}, baseline {}",
        mib(r.gateway_peak_rss_mib),
        mib(r.baseline_peak_rss_mib)
    );
    // This process runs pinned by now: what it may use is the loadgen's share.
    let client_cpus = crate::procs::allowed_cpus().len() as f64;
    if r.baseline_closed.client_cpus_busy.unwrap_or(0.0) > 0.9 * client_cpus {
        println!(
            "note: the load generator was near its CPU limit in a closed-loop run; the baseline may be faster than measured, so the true ratio may be lower"
        );
    }
    if a.smoke {
        println!("(smoke run: figures mean nothing)");
    }
}
