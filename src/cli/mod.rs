//! The command line. Thin: every command calls into a module that does the work.

pub(crate) mod audit;
pub(crate) mod backup;
pub(crate) mod data_keys;
pub(crate) mod federation;
pub(crate) mod keys;
pub(crate) mod ldv;
pub(crate) mod stats;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::dev::init;
use crate::node::Node;

#[derive(Parser)]
#[command(
    name = "sluis",
    version,
    about = "Privacy-preserving exchange of LVV case data: consent-checked, pseudonymised, audited, over gRPC with mutual TLS.",
    long_about = "sluis brokers consent-based sharing of case data between municipalities, IND, DT&V, AVIM and NGOs.\n\
Each data category is released only when the node's policy and the migrant's consent allow it; the migrant\n\
appears under a different pseudonym to every recipient; every access is recorded before any data leaves.\n\n\
Start here:  sluis demo            (a complete scenario against a real node, nothing to set up)\n\
             sluis serve --dev     (a development node in ./sluis-dev)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node.
    Serve {
        /// Zero setup: create a development node in --dir on first run, then serve it.
        #[arg(long, conflicts_with = "config")]
        dev: bool,
        /// Folder of the development node (with --dev).
        #[arg(long, default_value = "sluis-dev")]
        dir: PathBuf,
        /// Configuration file of a real deployment.
        #[arg(long, value_name = "FILE", required_unless_present = "dev")]
        config: Option<PathBuf>,
    },
    /// Write a node folder (config, policy, keys, database) around your own certificates, and
    /// print what is left to fill in; with --dev, a ready-to-run development node (dev PKI,
    /// one sample participant per role).
    Init {
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// A development node: a dev CA, a localhost certificate and sample participants.
        #[arg(long, conflicts_with_all = ["cert", "key", "ca", "crl", "database", "keys_dir"])]
        dev: bool,
        /// The node's name, e.g. sluis.gemeente.example: the origin of its signed receipts and
        /// checkpoints (no spaces or '+'); in a federation its node id (e.g. gm0344). With
        /// --dev: default sluis-dev.example.
        #[arg(long, required_unless_present = "dev")]
        name: Option<String>,
        /// The node's certificate chain (PEM, its own certificate first).
        #[arg(long, value_name = "PEM", required_unless_present = "dev")]
        cert: Option<PathBuf>,
        /// The node certificate's private key (PEM).
        #[arg(long, value_name = "PEM", required_unless_present = "dev")]
        key: Option<PathBuf>,
        /// The CA certificates (PEM) that issue your participants' client certificates.
        #[arg(long, value_name = "PEM", required_unless_present = "dev")]
        ca: Option<PathBuf>,
        /// A CRL file (PEM) of a client CA; repeat for each CA.
        #[arg(long, value_name = "PEM")]
        crl: Vec<PathBuf>,
        /// The database: postgres://USER@HOST:5432/DB (default: sqlite://sluis.db in DIR).
        #[arg(long, value_name = "URL")]
        database: Option<String>,
        /// Where to make the node's keys (default: DIR/keys), e.g. /var/lib/sluis/keys.
        #[arg(long, value_name = "DIR")]
        keys_dir: Option<PathBuf>,
        /// Address the node will listen on (default: 0.0.0.0:7443; with --dev 127.0.0.1:7443).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Check a node's configuration, certificates, keys and policy, and report every problem
    /// at once, each with its file, line and fix. Exit 0 when nothing stops the node (warnings
    /// may remain), 1 otherwise. `serve` runs the same check first.
    CheckConfig {
        #[arg(long, value_name = "FILE", default_value = "sluis.toml")]
        config: PathBuf,
    },
    /// Copy a live SQLite node into the new folder DIR: the database as of one commit
    /// (SQLite's online backup, taken while the node serves), the key files apart in
    /// DIR/keys (each readable by its owner only), and DIR/MANIFEST.json saying what is where
    /// with each file's SHA-256. A PostgreSQL node is backed up with pg_dump or pg_basebackup
    /// (docs/operations.md).
    Backup {
        #[arg(long, value_name = "FILE", default_value = "sluis.toml")]
        config: PathBuf,
        /// A folder that does not exist yet.
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
    },
    /// Restore a backup made by `sluis backup` — the database to a new file, the keys to a
    /// new folder — and check the restored log against its signed checkpoints (every leaf
    /// and node recomputed, every checkpoint's signature verified) before calling it usable.
    /// With --check instead: check the database and keys a configuration names (SQLite, or
    /// PostgreSQL restored with its own tools). Exit 0 usable, 1 not.
    Restore {
        /// The backup folder.
        #[arg(
            long,
            value_name = "DIR",
            required_unless_present = "check",
            requires = "to"
        )]
        from: Option<PathBuf>,
        /// The new database file.
        #[arg(long, value_name = "PATH", conflicts_with = "check")]
        to: Option<PathBuf>,
        /// The new keys folder (default: `keys` beside --to).
        #[arg(long, value_name = "DIR", conflicts_with = "check")]
        keys_to: Option<PathBuf>,
        /// Check the node --config names, restore nothing.
        #[arg(long)]
        check: bool,
        #[arg(long, value_name = "FILE", default_value = "sluis.toml")]
        config: PathBuf,
    },
    /// Development certificates.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// Run a realistic LVV scenario against a real node over mTLS and show who saw what.
    Demo {
        /// Keep the node's files in DIR (reused if it already holds a node).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// The access log, for privacy officers: query, export, checkpoint, prove, report, verify.
    /// Against a node over gRPC with your officer certificate (--node URL --cert --key --ca, or
    /// --profile FILE), or on the node's host from its database (--config, read-only).
    Audit {
        /// The node's configuration file (on the node's host).
        #[arg(long, value_name = "FILE", default_value = "sluis.toml", global = true)]
        config: PathBuf,
        #[command(subcommand)]
        command: Box<crate::cli::audit::Command>,
    },
    /// The privacy officer's web console, on this machine: browse and filter the access log,
    /// open an entry with its inclusion proof verified in the page, charts, alerts, log
    /// integrity, and the subject access report in Dutch or English. A client of the node over
    /// mTLS with your officer certificate; serves http://127.0.0.1:PORT/ with a session token.
    Console(Box<crate::console::Command>),
    /// Apply the database migrations embedded in this binary and exit (a node also applies them
    /// when it starts; some operators prefer to do it explicitly).
    Migrate {
        #[arg(long, value_name = "FILE", default_value = "sluis.toml")]
        config: PathBuf,
    },
    /// Ask a node for a protected statistics table over mTLS, as the national monitor or a
    /// municipality (its own cases). The node protects the figures and records the request.
    Stats(crate::cli::stats::Command),
    /// The federation directory, for the network's operator: keygen, sign, verify, show.
    Federation {
        #[command(subcommand)]
        command: crate::cli::federation::Command,
    },
    /// Crypto-erase what is past its `[retention]` period now (a serving node does it every
    /// retention.interval), with a progress line; each erasure is recorded. On SQLite, with the
    /// node stopped.
    Erase {
        /// Everything due now (the only mode).
        #[arg(long, required = true)]
        due: bool,
        #[arg(long, value_name = "FILE", default_value = "sluis.toml")]
        config: PathBuf,
    },
    /// Consent receipts.
    Receipt {
        #[command(subcommand)]
        command: ReceiptCommand,
    },
    /// The node's keys: rotate the checkpoint-signing key, the pseudonym secret or the data key;
    /// the data key's versions and re-wrapping.
    Keys {
        #[command(subcommand)]
        command: crate::cli::keys::KeysCommand,
    },
    /// The node's identity: rename it.
    Node {
        #[command(subcommand)]
        command: crate::cli::keys::NodeCommand,
    },
}

#[derive(Subcommand)]
enum CertsCommand {
    /// Write a dev CA, a node certificate, one client certificate per dev participant (OIN in the
    /// subject serialNumber) and an empty CRL into DIR.
    Init {
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Host names and IP addresses the node certificate is valid for.
        #[arg(long = "host", default_values = ["localhost", "127.0.0.1"])]
        hosts: Vec<String>,
    },
}

#[derive(Subcommand)]
enum ReceiptCommand {
    /// Verify a consent receipt offline against the node's verifier key.
    ///
    /// Checks the C2SP signed-note signature and that the note is a consent
    /// receipt of that node (header line, one line per fact, `state` last).
    /// Exit 0: verified (the receipt is printed); 1: not verified, with why.
    Verify {
        /// The node's verifier key (name+hash+key), as returned with the receipt.
        #[arg(long)]
        key: String,
        /// The receipt file (a signed note).
        file: PathBuf,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match runtime() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // `serve` sets up its logging from its configuration.
    if !matches!(cli.command, Command::Serve { .. }) {
        init_tracing();
    }
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        // The reader went away (`| head`): what it wanted it has; the rest
        // goes nowhere, and that is no failure.
        Err(e) if closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", crate::telemetry::chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// The node's configuration for an operator's command. Only a file that is
/// not there is "no node configuration" (with `hint`: how to name one);
/// any other error is the file's own problem, said as it is — never the
/// wrong cause.
pub(crate) fn load_config(path: &Path, hint: &str) -> anyhow::Result<Config> {
    match Config::load(path) {
        Ok(config) => Ok(config),
        Err(crate::config::ConfigError::Read { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            anyhow::bail!("no node configuration at {} ({hint})", path.display())
        }
        Err(e) => Err(e.into()),
    }
}

/// The hint of [`load_config`] for commands run on the node's host.
pub(crate) const ON_HOST: &str = "give the node's sluis.toml with --config FILE";

/// Whether an error is a write to a pipe whose reader has closed it.
fn closed_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The async runtime every command runs on: multi-threaded, one worker per
/// CPU. Public, like [`init_tracing`], so that the benchmark's gateway runs
/// on the very runtime `sluis serve` has.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

/// The process's log output for commands other than `serve` (and for
/// `serve` until its configuration is read): `SLUIS_LOG` as an
/// `EnvFilter` (default `info`), to stderr, human-readable on a terminal
/// and JSON lines otherwise, nothing exported. Public so that the
/// benchmark's gateway runs with the very subscriber `sluis serve` has
/// without an OTLP endpoint: a node measured without its logging would
/// look cheaper than it is. A second call does nothing.
pub fn init_tracing() {
    let _ = crate::telemetry::init(crate::telemetry::LogFormat::Auto, None);
}

/// [`init_tracing`] in `format`; a second call does nothing.
fn init_tracing_as(format: crate::telemetry::LogFormat) {
    let _ = crate::telemetry::init(format, None);
}

/// The `[log] format` a configuration file sets, read on its own: for the
/// lines that say why the rest of the file is refused, which are to be in
/// the format the operator chose. `auto` if the file cannot be read, is no
/// TOML, or sets no format, or none this binary knows.
fn configured_log_format(path: &Path) -> crate::telemetry::LogFormat {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .and_then(|t| t.get("log")?.get("format")?.clone().try_into().ok())
        .unwrap_or_default()
}

/// `sluis serve`: the configuration first, since it says how to log and
/// where to export; then the node. Every message, errors included, goes
/// through the one subscriber in the configured format.
async fn serve_command(dev: bool, dir: &Path, config: Option<PathBuf>) -> ExitCode {
    let mut created = false;
    let path = if dev {
        let path = dir.join(init::CONFIG_FILE);
        if !path.exists() {
            let made = match "127.0.0.1:7443".parse() {
                Ok(listen) => init::init(dir, listen).await.map_err(anyhow::Error::from),
                Err(e) => Err(anyhow::Error::from(e)),
            };
            if let Err(e) = made {
                return fail_to_start(None, &e).await;
            }
            created = true;
        }
        path
    } else {
        config.expect("clap requires --config without --dev")
    };
    // Everything that would stop the node or lock its callers out, found
    // before it starts: the same check as `sluis check-config`.
    let report = crate::check::check_with_log(&path).await;
    if report.has_errors() {
        // The configuration is refused, but its `[log] format` still says
        // how the operator reads this node's lines.
        init_tracing_as(configured_log_format(&path));
        for f in report.errors() {
            tracing::error!(
                file = %f.file.display(),
                line = f.line,
                problem = %f.problem,
                fix = %f.fix,
                "configuration error: {}{}: {}; fix: {}",
                f.file.display(),
                f.line.map(|l| format!(":{l}")).unwrap_or_default(),
                f.problem,
                f.fix
            );
        }
        let e = anyhow::anyhow!(
            "the node does not start: {} problem(s) in its configuration (above; `sluis check-config --config {}` lists them)",
            report.errors().count(),
            path.display()
        );
        return fail_to_start(None, &e).await;
    }
    let config = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            init_tracing_as(configured_log_format(&path));
            return fail_to_start(None, &e.into()).await;
        }
    };
    let telemetry = match crate::telemetry::init(config.log.format, config.otlp().as_ref()) {
        Ok(t) => t,
        Err(e) => return fail_to_start(None, &e.into()).await,
    };
    if created {
        tracing::info!(dir = %dir.display(), "created a development node");
    }
    for f in report.warnings() {
        tracing::warn!(file = %f.file.display(), line = f.line, problem = %f.problem, fix = %f.fix, "configuration warning");
    }
    match serve(&config, &path, dev.then_some(dir)).await {
        Ok(()) => {
            telemetry.shutdown().await;
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => fail_to_start(Some(telemetry), &e).await,
    }
}

/// Reports why `serve` ends with an error, once, in the log's format (the
/// default one when the configuration could not say which).
async fn fail_to_start(
    telemetry: Option<crate::telemetry::Telemetry>,
    e: &anyhow::Error,
) -> ExitCode {
    if telemetry.is_none() {
        init_tracing();
    }
    tracing::error!("{}", crate::telemetry::chain(e.as_ref()));
    if let Some(t) = telemetry {
        t.shutdown().await;
    }
    ExitCode::FAILURE
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve { dev, dir, config } => Ok(serve_command(dev, &dir, config).await),
        Command::Init {
            dir,
            dev: true,
            listen,
            name,
            ..
        } => {
            let listen = listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7443)));
            let name = name.as_deref().unwrap_or(init::DEV_NAME);
            let path = init::init_named(&dir, listen, name).await?;
            println!(
                "wrote a development node to {}; start it with: sluis serve --config {}",
                dir.display(),
                path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Init {
            dir,
            dev: false,
            name,
            cert,
            key,
            ca,
            crl,
            database,
            keys_dir,
            listen,
        } => {
            let (Some(name), Some(cert), Some(key), Some(client_ca)) = (name, cert, key, ca) else {
                anyhow::bail!(
                    "give --name, --cert, --key and --ca (or --dev for a development node)"
                );
            };
            let production = crate::init::Production {
                dir,
                name,
                listen: listen.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 7443))),
                cert,
                key,
                client_ca,
                crls: crl,
                database,
                keys_dir,
            };
            let path = crate::init::production(&production).await?;
            let report = crate::check::check(&path);
            print!("{}", crate::init::checklist(&production, &path, &report));
            Ok(ExitCode::SUCCESS)
        }
        Command::Backup { config, to } => backup::backup(&config, &to).await,
        Command::Restore {
            from: Some(from),
            to: Some(to),
            keys_to,
            check: false,
            ..
        } => backup::restore(&from, &to, keys_to).await,
        Command::Restore { config, .. } => backup::check_config(&config).await,
        Command::CheckConfig { config } => {
            let report = crate::check::check_with_log(&config).await;
            for f in &report.findings {
                println!("{f}");
            }
            let (errors, warnings) = (report.errors().count(), report.warnings().count());
            println!(
                "{}: {errors} error{}, {warnings} warning{}",
                config.display(),
                if errors == 1 { "" } else { "s" },
                if warnings == 1 { "" } else { "s" }
            );
            Ok(if errors == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Certs {
            command: CertsCommand::Init { dir, hosts },
        } => {
            let pki = crate::net::pki::write_dev_pki(&dir, &hosts, &init::pki_participants())?;
            println!("CA         {}", pki.ca_cert.display());
            println!(
                "node       {} (hosts: {})",
                pki.node_cert.display(),
                hosts.join(", ")
            );
            println!("CRL        {}", pki.crl.display());
            for (id, cert, _) in &pki.clients {
                println!("client     {} ({id})", cert.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { data_dir } => {
            let ok = crate::dev::demo::run(data_dir.as_deref()).await?;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Migrate { config } => {
            let config = load_config(&config, ON_HOST)?;
            let (store, _) =
                crate::store::Store::open(&config.database_url()?, &config.pool_settings(), true)
                    .await?;
            store.close().await;
            println!(
                "database {} is at the current schema",
                crate::store::redact_url(&config.node.database)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit { config, command } => crate::cli::audit::run(&config, *command).await,
        Command::Stats(c) => crate::cli::stats::run(c).await,
        Command::Federation { command } => crate::cli::federation::run(command),
        Command::Keys { command } => crate::cli::keys::run_keys(command).await,
        Command::Node { command } => crate::cli::keys::run_node(command).await,
        Command::Erase { config, .. } => crate::cli::data_keys::erase_due(&config).await,
        Command::Console(c) => crate::console::run(*c).await,
        Command::Receipt {
            command: ReceiptCommand::Verify { key, file },
        } => {
            let text = crate::files::read_to_string(&file, crate::files::Kind::Note)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            let origin = key.split('+').next().unwrap_or("");
            let checked = crate::tlog::note::verify(&text, &key).map(|body| {
                let grammar = crate::model::consent::check_receipt(origin, body);
                (body, grammar)
            });
            match checked {
                Ok((_, Err(e))) => {
                    eprintln!(
                        "receipt NOT verified: the note is signed by {origin} but is not a consent receipt: {e}"
                    );
                    Ok(ExitCode::FAILURE)
                }
                Ok((body, Ok(()))) => {
                    print!("{body}");
                    println!("receipt verified: signed by {origin}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("receipt NOT verified: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}

async fn serve(config: &Config, path: &Path, dev_dir: Option<&Path>) -> anyhow::Result<()> {
    let node = Node::start(config).await?;
    let addr = node.local_addr;
    if let Some(dir) = dev_dir {
        let d = dir.display();
        let grpcurl = format!(
            "grpcurl -cacert {d}/pki/ca.pem -cert {d}/pki/clients/gemeente-utrecht.pem -key {d}/pki/clients/gemeente-utrecht.key \\\n    \
-H 'x-sluis-actor: mw-0042' -d '{{\"scope\":\"SCOPE_OWN\"}}' localhost:{port} sluis.v1.CaseService/FindCases",
            port = addr.port()
        );
        if config.log.format.json() {
            tracing::info!(%addr, %grpcurl, clients = %format!("{d}/pki/clients"), "development node ready: call it as the municipality");
        } else {
            eprintln!(
                "\nsluis development node on {addr}. Call it as the municipality, e.g. with grpcurl:\n\n  {grpcurl}\n\n\
Client certificates for every dev participant are in {d}/pki/clients/. Stop with Ctrl-C.\n"
            );
        }
        if let Some(probes) = node.probes_addr {
            if config.log.format.json() {
                tracing::info!(%probes, "health and reflection without a certificate on the plain probes listener");
            } else {
                eprintln!(
                    "Health and reflection without a certificate, on the plain probes listener:\n\n  \
grpcurl -plaintext {probes} grpc.health.v1.Health/Check\n  \
grpcurl -plaintext {probes} list\n"
                );
            }
        }
    }
    // READY only once SIGHUP is handled: a reload sent the moment the
    // service manager reports the node started must not end it.
    let status = format!("serving on {addr}");
    wait_for_signals(&node, path, || {
        notify(&[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(&status),
        ])
    })
    .await;
    tracing::info!("shutting down: draining requests, signing the log's tail");
    notify(&[sd_notify::NotifyState::Stopping]);
    node.shutdown().await?;
    Ok(())
}

/// Tells the service manager (systemd, `Type=notify`) how the node is: a
/// no-op where `NOTIFY_SOCKET` is not set; a failure to tell is logged, never
/// fatal (the node serves either way).
fn notify(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(error = %e, "cannot notify the service manager (NOTIFY_SOCKET)");
    }
}

/// Ctrl-C or SIGTERM stops the node; SIGHUP reloads participants, policy,
/// certificates and CRLs from the configuration at `path` (`Node::reload`),
/// and the federation directory.
/// `ready` runs once the handlers are in place.
async fn wait_for_signals(node: &Node, path: &Path, ready: impl FnOnce()) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            ready();
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        ready();
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return,
                _ = term.recv() => return,
                _ = hup.recv() => {
                    notify(&[sd_notify::NotifyState::Reloading]);
                    match node.reload(path).await {
                        Ok(r) => tracing::info!(
                            policy_sha256 = %r.policy_sha256,
                            participants = r.participants,
                            added = %r.added.join(","),
                            removed = %r.removed.join(","),
                            "reloaded: participants, policy, TLS certificates and CRLs"
                        ),
                        Err(e) => tracing::error!(error = %crate::telemetry::chain(&e), "reload refused; the node keeps its running participants, policy and TLS configuration"),
                    }
                    node.reload_federation_logged().await;
                    notify(&[sd_notify::NotifyState::Ready]);
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        ready();
        let _ = tokio::signal::ctrl_c().await;
    }
}
