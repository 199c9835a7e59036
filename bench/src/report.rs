//! Figures as people and programs read them: histogram summaries, the
//! machine they were measured on, durations and numbers in text.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latency histograms count microseconds, from 1 µs to 60 s, with three
/// significant digits: enough to tell 0.30 ms from 0.31 ms.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("static bounds are valid")
}

pub fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record((d.as_micros() as u64).max(1));
}

/// One run (or several merged) in numbers.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Successful answers counted in the measured window.
    pub requests: u64,
    /// Answers with a non-OK status, and timeouts.
    pub errors: u64,
    /// Open loop: requests not sent because too many were outstanding.
    pub dropped: u64,
    pub seconds: f64,
    pub req_per_s: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Summary {
    pub fn new(h: &Histogram<u64>, errors: u64, dropped: u64, seconds: f64) -> Summary {
        let q = |q: f64| {
            if h.is_empty() {
                0.0
            } else {
                h.value_at_quantile(q) as f64 / 1000.0
            }
        };
        Summary {
            requests: h.len(),
            errors,
            dropped,
            seconds,
            req_per_s: if seconds > 0.0 {
                h.len() as f64 / seconds
            } else {
                0.0
            },
            mean_ms: if h.is_empty() { 0.0 } else { h.mean() / 1000.0 },
            p50_ms: q(0.5),
            p90_ms: q(0.9),
            p99_ms: q(0.99),
            p999_ms: q(0.999),
            max_ms: if h.is_empty() {
                0.0
            } else {
                h.max() as f64 / 1000.0
            },
        }
    }
}

/// Where the figures come from.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// Online CPUs (`nproc`).
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_gib: f64,
    pub kernel: String,
}

pub fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_kib: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count()
        .max(1);
    Machine {
        cpus,
        cpu_model,
        memory_gib: memory_kib / (1024.0 * 1024.0),
        kernel,
    }
}

impl std::fmt::Display for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} CPUs ({}), {:.1} GiB RAM, Linux {}",
            self.cpus, self.cpu_model, self.memory_gib, self.kernel
        )
    }
}

/// The rate of an open-loop run: requests per second, or chosen from the
/// closed-loop throughput of the same run (`auto`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rate {
    Auto,
    PerSecond(f64),
}

impl Rate {
    /// The fixed rate, if one was given.
    pub fn fixed(self) -> Option<f64> {
        match self {
            Rate::Auto => None,
            Rate::PerSecond(r) => Some(r),
        }
    }
}

/// "auto", or a positive number of requests per second.
pub fn parse_rate(s: &str) -> Result<Rate, String> {
    match s.trim() {
        "auto" => Ok(Rate::Auto),
        r => r
            .parse::<f64>()
            .ok()
            .filter(|r| r.is_finite() && *r > 0.0)
            .map(Rate::PerSecond)
            .ok_or_else(|| format!("{r:?} is not a number of requests per second, nor auto")),
    }
}

/// "1.5s", "500ms", "2m" or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 5s, 500ms or 2m"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" | "min" => n * 60.0,
        _ => return Err(format!("{s:?}: use ms, s or m")),
    };
    if !(secs.is_finite() && secs >= 0.0) {
        return Err(format!("{s:?} is not a positive duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// 12345.6 → "12,346".
pub fn thousands(x: f64) -> String {
    let n = x.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// The summary as one table row (after a label column).
pub fn row(label: &str, s: &Summary) -> String {
    format!(
        "{label:<28} {:>9} {:>8.3} {:>8.3} {:>8.3} {:>8.2} {:>7}",
        thousands(s.req_per_s),
        s.p50_ms,
        s.p90_ms,
        s.p99_ms,
        s.max_ms,
        s.errors + s.dropped
    )
}

pub fn header(label: &str) -> String {
    format!(
        "{label:<28} {:>9} {:>8} {:>8} {:>8} {:>8} {:>7}",
        "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors"
    )
}
