//! Child processes and what `/proc` tells about them: CPU pinning with
//! `taskset`, servers that announce their address on stdout and stop when
//! their stdin closes, CPU time and peak memory.
//!
//! Servers run in their own processes for three reasons: they can be pinned
//! to other CPUs than the load generator (on a small machine the two would
//! otherwise fight for the same core and the measurement would mostly show
//! the scheduler), their peak RSS is their own, and their CPU time per
//! request can be read from `/proc/<pid>/stat`.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};

/// Where servers and the load generator run.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct Pinning {
    /// CPUs for the servers, as a taskset list ("0", "0-1"). Default: the
    /// first half of the CPUs this process may use.
    #[arg(long)]
    pub server_cpus: Option<String>,
    /// CPUs for the load generator. Default: the other half.
    #[arg(long)]
    pub client_cpus: Option<String>,
    /// Do not pin anything (also what happens without taskset or with one CPU).
    #[arg(long)]
    pub no_pin: bool,
}

/// CPU lists decided once, before this process pins itself (afterwards it
/// would only see its own share).
#[derive(Clone, Debug, Default)]
pub struct Cpus {
    pub server: Option<String>,
    pub client: Option<String>,
}

impl Pinning {
    /// Decides both CPU lists and pins this process (the load generator)
    /// to its own. Call before the runtime starts its threads.
    pub fn apply(&self) -> Cpus {
        let server = self.server_cpus();
        let client = pin_self(self.client_cpus().as_deref());
        Cpus { server, client }
    }

    fn split(&self) -> Option<(String, String)> {
        if self.no_pin || !taskset_available() {
            return None;
        }
        let cpus = allowed_cpus();
        if cpus.len() < 2 {
            return None;
        }
        let half = cpus.len().div_ceil(2);
        let list = |c: &[usize]| {
            c.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        Some((list(&cpus[..half]), list(&cpus[half..])))
    }

    fn server_cpus(&self) -> Option<String> {
        if self.no_pin || !taskset_available() {
            return None;
        }
        self.server_cpus
            .clone()
            .or_else(|| self.split().map(|(s, _)| s))
    }

    fn client_cpus(&self) -> Option<String> {
        if self.no_pin || !taskset_available() {
            return None;
        }
        self.client_cpus
            .clone()
            .or_else(|| self.split().map(|(_, c)| c))
    }
}

fn taskset_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        Command::new("taskset")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// The CPUs this process may run on, from `Cpus_allowed_list`.
pub fn allowed_cpus() -> Vec<usize> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(str::trim)
        .unwrap_or("");
    let mut cpus = Vec::new();
    for part in list.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                    cpus.extend(a..=b);
                }
            }
            None => {
                if let Ok(a) = part.parse() {
                    cpus.push(a);
                }
            }
        }
    }
    if cpus.is_empty() {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        cpus.extend(0..n);
    }
    cpus
}

/// Pins this process (all its threads: call before starting the runtime)
/// to `cpus`. Returns the list when that worked; a failure only costs
/// precision, so it is reported and ignored.
pub fn pin_self(cpus: Option<&str>) -> Option<String> {
    let cpus = cpus?;
    let ok = Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &std::process::id().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Some(cpus.to_string())
    } else {
        eprintln!("note: could not pin the load generator to CPUs {cpus}; running unpinned");
        None
    }
}

static SERVER_EXE: OnceLock<PathBuf> = OnceLock::new();

/// Servers run from a copy of this program made in `dir` (the run's
/// folder): a `cargo build` during a long run replaces the binary, and every
/// server of a run must be the same code.
pub fn use_copy_of_self(dir: &Path) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    // Linux names a replaced binary "… (deleted)"; the copy must come from
    // this very process, which /proc/self/exe still is.
    let source = if exe.to_string_lossy().ends_with(" (deleted)") {
        PathBuf::from("/proc/self/exe")
    } else {
        exe
    };
    let copy = dir.join("bench-server");
    std::fs::copy(&source, &copy)
        .with_context(|| format!("cannot copy this program to {}", copy.display()))?;
    let _ = SERVER_EXE.set(copy);
    Ok(())
}

fn server_exe() -> anyhow::Result<PathBuf> {
    match SERVER_EXE.get() {
        Some(p) => Ok(p.clone()),
        None => std::env::current_exe().context("cannot find this program's path"),
    }
}

/// A server running as a child process of this binary.
pub struct Server {
    child: std::process::Child,
    stdin: Option<ChildStdin>,
    pub addr: SocketAddr,
    pub name: String,
    log: PathBuf,
}

impl Server {
    /// A sluis node serving `config` as `sluis serve` does (the hidden
    /// `serve-gateway` command), its log in `dir`/gateway.log.
    /// `otlp`: exporting spans and metrics to a sink in its own process.
    pub fn gateway(
        config: &Path,
        cpus: Option<&str>,
        dir: &Path,
        otlp: bool,
    ) -> anyhow::Result<Server> {
        let mut args: Vec<OsString> =
            vec!["serve-gateway".into(), "--config".into(), config.into()];
        if otlp {
            args.push("--otlp-sink".into());
        }
        Server::spawn("gateway", &args, cpus, &dir.join("gateway.log"))
    }

    /// The bare baseline behind the TLS of `config`, replaying `answers`
    /// (the hidden `serve-baseline` command), its log in `dir`/baseline.log.
    pub fn baseline(
        config: &Path,
        answers: &Path,
        cpus: Option<&str>,
        dir: &Path,
    ) -> anyhow::Result<Server> {
        let args = [
            "serve-baseline".into(),
            "--config".into(),
            config.into(),
            "--answers".into(),
            answers.into(),
        ];
        Server::spawn("baseline", &args, cpus, &dir.join("baseline.log"))
    }

    /// Starts `<this binary> args…` (under `taskset -c cpus` when given),
    /// stderr to `log`, and waits for its `listening ADDR` line.
    fn spawn(
        name: &str,
        args: &[OsString],
        cpus: Option<&str>,
        log: &Path,
    ) -> anyhow::Result<Server> {
        let exe = server_exe()?;
        let mut cmd = match cpus {
            Some(c) => {
                let mut cmd = Command::new("taskset");
                cmd.arg("-c").arg(c).arg(exe);
                cmd
            }
            None => Command::new(exe),
        };
        let stderr = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let mut child = cmd
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("cannot start the {name} server"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout);
            let mut first = String::new();
            let _ = lines.read_line(&mut first);
            let _ = tx.send(first);
            // Keep draining so the child never blocks on a full pipe.
            let mut sink = Vec::new();
            let _ = lines.read_to_end(&mut sink);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(300))
            .unwrap_or_default();
        let addr = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|a| a.parse::<SocketAddr>().ok());
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            let tail = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(15).collect();
            bail!(
                "the {name} server did not start; last lines of {}:\n{}",
                log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        };
        Ok(Server {
            child,
            stdin,
            addr,
            name: name.to_string(),
            log: log.to_path_buf(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident set size (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        status_kib(self.pid(), "VmHWM:")
    }

    /// Closes its stdin (the signal to shut down gracefully) and waits.
    pub fn stop(mut self) -> anyhow::Result<()> {
        drop(self.stdin.take());
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    eprintln!(
                        "note: the {} server ended with {status}; see {}",
                        self.name,
                        self.log.display()
                    );
                }
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// User + system CPU seconds of a process (None: this one).
pub fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name, which is in parentheses and may hold
    // spaces: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Waits until stdin reaches end of file: the parent closed it or died.
pub async fn stdin_closed() {
    let _ = tokio::task::spawn_blocking(|| {
        let mut buf = [0u8; 64];
        let mut stdin = std::io::stdin();
        while let Ok(n) = stdin.read(&mut buf) {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// Announces the address on stdout, the line [`Server::spawn`] waits for.
pub fn announce(addr: SocketAddr) -> anyhow::Result<()> {
    let mut out = std::io::stdout();
    writeln!(out, "listening {addr}")?;
    out.flush()?;
    Ok(())
}

/// `serve-gateway`: a sluis node exactly as `sluis serve --config` runs it,
/// its logging and telemetry set up from the configuration; with
/// `otlp_sink`, exporting to [`crate::otlp_sink`] in this process (every
/// `export_interval_ms` of the configuration for metrics).
pub async fn serve_gateway(config: &Path, otlp_sink: bool) -> anyhow::Result<()> {
    let config = sluis::config::Config::load(config)?;
    let otlp = if otlp_sink {
        let at = crate::otlp_sink::start().await?;
        Some(sluis::telemetry::Otlp {
            endpoint: format!("http://{at}"),
            service_name: config.node.name.clone(),
            export_interval: std::time::Duration::from_millis(config.telemetry.export_interval_ms),
        })
    } else {
        config.otlp()
    };
    let telemetry = sluis::telemetry::init(config.log.format, otlp.as_ref())?;
    let node = sluis::node::Node::start(&config).await?;
    announce(node.local_addr)?;
    stdin_closed().await;
    node.shutdown().await?;
    telemetry.shutdown().await;
    Ok(())
}
