//! A private PostgreSQL server a test starts itself (initdb + pg_ctl, its
//! own data directory and port), so the shared server and the other tests
//! are untouched: for what a test does to the server (stop it, turn TLS on).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The newest PostgreSQL server binaries (Debian's layout), if installed.
pub fn pg_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists() && p.join("pg_ctl").exists())
        .collect();
    dirs.sort();
    dirs.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false)
}

/// Runs a PostgreSQL tool, as the `postgres` user when we are root (the
/// server refuses to run as root).
fn pg(bin: &Path, tool: &str, args: &[&str]) {
    let exe = bin.join(tool);
    let status = if is_root() {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(&exe)
            .args(args)
            .status()
    } else {
        Command::new(&exe).args(args).status()
    }
    .unwrap();
    assert!(status.success(), "{tool} {args:?} failed");
}

/// Gives `path` to the `postgres` user when we are root (the server reads
/// its files as that user, and wants its key readable by it alone).
fn give_to_postgres(path: &Path) {
    if is_root() {
        assert!(
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(path)
                .status()
                .unwrap()
                .success()
        );
    }
}

pub struct PrivatePg {
    bin: PathBuf,
    data: String,
    pub port: u16,
    /// Server options beyond port and addresses (`-c name=value …`).
    options: String,
    _dir: tempfile::TempDir,
}

impl PrivatePg {
    /// A server with `trust` authentication over TCP, without TLS.
    pub fn init() -> PrivatePg {
        PrivatePg::init_with(None)
    }

    /// A server with `ssl=on` presenting `cert_pem` (its chain) and
    /// `key_pem`, which accepts TCP connections over TLS only (`hostssl`
    /// in `pg_hba.conf`; a plain one is refused).
    pub fn init_tls(cert_pem: &str, key_pem: &str) -> PrivatePg {
        PrivatePg::init_with(Some((cert_pem, key_pem)))
    }

    fn init_with(tls: Option<(&str, &str)>) -> PrivatePg {
        let bin = pg_bin().expect("PostgreSQL server binaries");
        let dir = tempfile::Builder::new()
            .prefix("sluis-pg")
            .tempdir_in("/tmp")
            .unwrap();
        give_to_postgres(dir.path());
        let data = dir.path().join("data").display().to_string();
        pg(
            &bin,
            "initdb",
            &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
        );
        let port = super::free_port();
        let mut options = String::new();
        if let Some((cert, key)) = tls {
            use std::os::unix::fs::PermissionsExt;
            let data = Path::new(&data);
            let (cert_path, key_path) = (data.join("server.crt"), data.join("server.key"));
            std::fs::write(&cert_path, cert).unwrap();
            std::fs::write(&key_path, key).unwrap();
            std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
            )
            .unwrap();
            give_to_postgres(data);
            options = format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                cert_path.display(),
                key_path.display()
            );
        }
        let pg = PrivatePg {
            bin,
            data,
            port,
            options,
            _dir: dir,
        };
        pg.start();
        pg
    }

    pub fn start(&self) {
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={}{}",
            self.port,
            Path::new(&self.data).parent().unwrap().display(),
            self.options
        );
        let log = format!("{}/../server.log", self.data);
        pg(
            &self.bin,
            "pg_ctl",
            &["-D", &self.data, "-o", &opts, "-l", &log, "-w", "start"],
        );
    }

    pub fn stop(&self) {
        pg(
            &self.bin,
            "pg_ctl",
            &["-D", &self.data, "-m", "fast", "-w", "stop"],
        );
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        self.url_at("127.0.0.1")
    }

    /// The server's URL with `host` as the host name (a name the server's
    /// certificate names, for `verify-full`).
    pub fn url_at(&self, host: &str) -> String {
        format!("postgres://postgres@{host}:{}/postgres", self.port)
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let mut stop = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"));
            c
        } else {
            Command::new(self.bin.join("pg_ctl"))
        };
        let _ = stop
            .args(["-D", &self.data, "-m", "immediate", "stop"])
            .status();
    }
}
