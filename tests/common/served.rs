//! A node run as the real `sluis` binary, as an operator runs it: what a
//! test needs of a process — its log lines, its signals, its exit.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluis::rpc::Clients;

use super::channel_as;

/// A node folder made by `sluis init`, served by the `sluis` binary with
/// stderr piped (not a terminal), on the suite's database: its SQLite file,
/// or a fresh PostgreSQL database in the PostgreSQL pass (where sqlx's
/// query logging once cost every other request its span; see
/// `telemetry::init`).
pub struct Served {
    pub dir: tempfile::TempDir,
    child: Child,
    pub addr: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
    reader: std::thread::JoinHandle<()>,
}

impl Served {
    /// `edit` adjusts the configuration file's text before the node starts.
    pub async fn start(edit: impl FnOnce(String) -> String) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let path = sluis::dev::init::init(dir.path(), "127.0.0.1:0".parse().unwrap())
            .await
            .expect("init a node folder");
        // The suite's database: the SQLite file, or a fresh PostgreSQL
        // database in the PostgreSQL pass.
        super::use_test_database(dir.path()).await;
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, edit(text)).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluis"))
            .args(["serve", "--config"])
            .arg(&path)
            .env_remove("SLUIS_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run sluis serve");
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let seen = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = serving_addr(&line) {
                    let _ = addr_tx.send(addr);
                }
                seen.lock().unwrap().push(line);
            }
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("the node did not say where it serves: {:?}", lines));
        Served {
            dir,
            child,
            addr,
            lines,
            reader,
        }
    }

    /// The node's configuration file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join(sluis::dev::init::CONFIG_FILE)
    }

    pub async fn client(&self, who: &str) -> Clients {
        Clients::new(channel_as(self.addr, self.dir.path(), who).await.unwrap())
    }

    /// Sends the process `signal` (e.g. `"HUP"`), as `kill -s` does.
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args(["-s", signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -s {signal}");
    }

    /// The log lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// The JSON log lines so far whose message starts with `message`.
    pub fn lines_starting(&self, message: &str) -> Vec<serde_json::Value> {
        self.lines()
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| {
                v["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(message))
            })
            .collect()
    }

    /// Waits (up to a minute) for the `n`-th log line whose message starts
    /// with `message`, and returns it as JSON.
    pub async fn wait_for_line(&self, message: &str, n: usize) -> serde_json::Value {
        for _ in 0..600 {
            let found = self.lines_starting(message);
            if found.len() >= n {
                return found[n - 1].clone();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no line {n} {message:?}: {:#?}", self.lines());
    }

    /// SIGTERM, as systemd stops it; waits for the exit and every line.
    pub fn stop(self) -> Vec<String> {
        self.stop_keeping_folder().0
    }

    /// Stops the node and hands back its log lines and its folder (to
    /// read its access log after it stopped).
    pub fn stop_keeping_folder(mut self) -> (Vec<String>, tempfile::TempDir) {
        self.signal("TERM");
        let status = self.child.wait().unwrap();
        self.reader.join().unwrap();
        let lines = self.lines.lock().unwrap().clone();
        assert!(status.success(), "sluis serve exited {status}: {lines:#?}");
        (lines, self.dir)
    }
}

/// The address in the start-up line (`local_addr`), if this is it.
fn serving_addr(line: &str) -> Option<SocketAddr> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    v["fields"]["local_addr"].as_str()?.parse().ok()
}

/// Runs the `sluis` binary with `args` and `--config config` to its end;
/// its standard output, or a failure with what it said.
pub fn sluis_command(args: &[&str], config: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_sluis"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sluis {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
