//! A running sluis node: loads its configuration, keys, policy and store,
//! and serves the gRPC API behind the TLS acceptor.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Server;

use crate::config::{Config, ConfigError};
use crate::gateway::Exchange;
use crate::gateway::vault::{Keys, VaultError};
use crate::net::identity::Registry;
use crate::net::sources::{Sources, Unauthenticated};
use crate::net::tls::{self, TlsError, TlsFiles};
use crate::policy::{Policy, PolicyError};
use crate::store::{Store, StoreError};
use crate::tlog::{AuditError, AuditLog, LogSettings};

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("keys: {0}")]
    Keys(#[from] VaultError),
    #[error("policy: {0}")]
    Policy(#[from] PolicyError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("access log: {0}")]
    Audit(#[from] AuditError),
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server: {0}")]
    Serve(#[from] tonic::transport::Error),
    #[error(transparent)]
    Router(#[from] crate::rpc::RouterError),
    #[error("federation: {0}")]
    Federation(#[from] crate::federation::FederationError),
    /// Retention or data key maintenance failed (`gateway::retention`).
    #[error("retention and keys: {0}")]
    Maintenance(String),
}

/// Why a reload was refused; the node keeps what it ran with.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// What `sluis check-config` reports as errors, one per line.
    #[error("{} problem(s) in the configuration:\n{}", .0.len(), .0.join("\n"))]
    Check(Vec<String>),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("policy: {0}")]
    Policy(#[from] PolicyError),
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("federation: {0}")]
    Federation(crate::federation::FederationError),
    #[error("the reload could not be recorded in the access log")]
    NotRecorded,
}

/// What a reload put in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reloaded {
    /// The policy's version, SHA-256 of its text in hex.
    pub policy_sha256: String,
    pub participants: usize,
    /// Participant ids registered now and not before, and the reverse.
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

/// A node serving in the background of the current tokio runtime.
pub struct Node {
    pub local_addr: SocketAddr,
    /// The plain probes listener's address (`[probes] listen`), if any.
    pub probes_addr: Option<SocketAddr>,
    /// The federation listener's address (`[federation] listen`), if any.
    pub federation_addr: Option<SocketAddr>,
    pub(crate) exchange: Arc<Exchange>,
    pub store: Store,
    /// Connections without an accepted certificate, per source, until the
    /// next summary (see [`Node::report_unauthenticated`]).
    pub sources: Arc<Sources>,
    /// The requests in progress; shutdown waits for them.
    pub in_flight: crate::rpc::InFlight,
    /// The TLS files the configuration names, as of the last reload.
    tls_files: std::sync::Mutex<TlsFiles>,
    tls_tx: watch::Sender<Arc<tls::TlsConfig>>,
    registry_tx: watch::Sender<Arc<Registry>>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), NodeError>>,
    health_task: JoinHandle<()>,
    report_task: JoinHandle<()>,
    maintenance_task: JoinHandle<()>,
    /// The keys folder, re-read for data key versions.
    keys_dir: std::path::PathBuf,
    probes: Option<Probes>,
    /// The running federation directory (`[federation]`), if the node is in one.
    federation: Option<Arc<crate::federation::Federation>>,
    /// The federation listener, if `[federation] listen` is set.
    federation_listener: Option<FederationListener>,
    /// The witnessing rounds (`[federation] witness_key`).
    witness_task: Option<JoinHandle<()>>,
}

/// The bounds of the plain probes listener, which anyone who reaches its
/// port may connect to: a probe is one short call, so a few connections
/// per source and a short idle time serve every orchestrator and load
/// balancer, and a client that opens connections and sends nothing holds
/// at most these (`net::plain`).
const PROBE_LIMITS: crate::net::plain::PlainLimits = crate::net::plain::PlainLimits {
    max_open: 256,
    max_per_source: 32,
    idle_timeout: Duration::from_secs(30),
};

/// The plain probes listener's stop signal and task.
type Probes = (oneshot::Sender<()>, JoinHandle<Result<(), NodeError>>);

/// Writes the summaries of connections without an accepted certificate,
/// one access record per source, every `interval`.
async fn report_unauthenticated_every(
    interval: Duration,
    exchange: Arc<Exchange>,
    sources: Arc<Sources>,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        report_unauthenticated(&exchange, &sources).await;
    }
}

/// Every `interval`: the data key versions re-read from the keys folder,
/// case keys re-wrapped under the newest, and what is past its retention
/// period erased (`gateway::retention`). A failure is logged and tried
/// again at the next tick.
async fn maintain_every(interval: Duration, exchange: Arc<Exchange>, keys_dir: std::path::PathBuf) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(e) = maintain(&exchange, &keys_dir).await {
            tracing::error!(error = %e, "retention and key maintenance failed; trying again at the next interval");
        }
    }
}

/// One run of what [`maintain_every`] does.
async fn maintain(exchange: &Exchange, keys_dir: &std::path::Path) -> Result<(), String> {
    exchange
        .keys
        .reload_data_keys(keys_dir)
        .map_err(|e| e.to_string())?;
    let log = |line: &str| tracing::info!("{line}");
    exchange
        .move_legacy_cases(&log)
        .await
        .map_err(|e| e.to_string())?;
    exchange
        .rewrap_case_keys(None, &log)
        .await
        .map_err(|e| e.to_string())?;
    exchange.erase_due(&log).await.map_err(|e| e.to_string())?;
    Ok(())
}

fn list_or_none(ids: &[String]) -> String {
    if ids.is_empty() {
        "none".into()
    } else {
        ids.join(", ")
    }
}

async fn report_unauthenticated(exchange: &Exchange, sources: &Sources) -> usize {
    let summaries = sources.take();
    for s in &summaries {
        tracing::info!(summary = %s, "connections without an accepted client certificate");
        // A failure is logged by the exchange; the counts stay in the
        // node's log line above.
        let _ = exchange.unauthenticated(s).await;
    }
    summaries.len() + exchange.report_unregistered().await
}

/// The federation listener (`[federation] listen`): peer nodes over mTLS
/// with their node certificates, recognised by the keys the directory pins,
/// served `rpc::federated`'s routes. The server certificate is the node's
/// own; the client CAs are the peers'.
/// Binds a listener, and the address it took (port 0 gives a free one).
async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), NodeError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| NodeError::Listen { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| NodeError::Listen { addr, source })?;
    Ok((listener, bound))
}

/// What every mTLS listener does with a refused handshake that presented
/// a certificate (counted by reason where it is refused, `net::tls`):
/// records it in the access log,
/// in a task of its own so the accept loop does not wait for the log.
fn on_handshake_failure(
    exchange: &Arc<Exchange>,
) -> Arc<dyn Fn(tls::HandshakeFailure) + Send + Sync> {
    let ex = exchange.clone();
    Arc::new(move |f: tls::HandshakeFailure| {
        let ex = ex.clone();
        tokio::spawn(async move { ex.handshake_failed(f).await });
    })
}

async fn serve_federation(
    config: &Config,
    addr: SocketAddr,
    federation: Arc<crate::federation::Federation>,
    exchange: Arc<Exchange>,
    in_flight: crate::rpc::InFlight,
) -> Result<FederationListener, NodeError> {
    let files = config
        .federation_tls_files()
        .unwrap_or_else(|| config.tls_files());
    let (tls_tx, tls_rx) = watch::channel(tls::server_config(&files, None)?);
    let (listener, bound) = bind(addr).await?;
    let on_failure = on_handshake_failure(&exchange);
    let incoming = tls::serve_tls(
        listener,
        tls_rx,
        federation.peers(),
        config.accept_settings(),
        Sources::new(config.source_limits()),
        on_failure,
    );
    let routes = crate::rpc::federated::router(
        Server::builder(),
        exchange,
        federation,
        config.limits.max_message_bytes,
        Duration::from_millis(config.limits.message_timeout_ms),
        in_flight,
    )?;
    let (stop, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        routes
            .serve_with_incoming_shutdown(ReceiverStream::new(incoming), async {
                let _ = stop_rx.await;
            })
            .await?;
        Ok(())
    });
    tracing::info!(federation = %bound, "federation listener (peer nodes, mTLS)");
    Ok(FederationListener {
        addr: bound,
        tls_tx,
        stop,
        task,
    })
}

/// The federation listener: its address, the TLS configuration it accepts
/// with (replaced on reload), and its stop signal and task.
struct FederationListener {
    addr: SocketAddr,
    tls_tx: watch::Sender<Arc<tls::TlsConfig>>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), NodeError>>,
}

/// The gateway of a node without its listeners: keys, policy, registry,
/// the store (claimed), the log writer and the `Exchange`; cases from
/// before per-case keys moved under keys of their own. What `Node::start`
/// serves, and what `sluis erase --due` and `sluis keys status` work on.
async fn open_gateway(config: &Config) -> Result<Gateway, NodeError> {
    let keys_dir = config.path(&config.node.keys_dir);
    Keys::no_rotation_pending(&keys_dir)?;
    let keys = Arc::new(Keys::load(&keys_dir)?);
    let retention = config.retention.periods();
    let federation = match &config.federation {
        Some(f) => Some(Arc::new(crate::federation::Federation::load(
            &config.node.name,
            f,
            &config.base_dir,
        )?)),
        None => None,
    };
    let policy = Arc::new(Policy::load(
        &config.path(&config.node.policy),
        &config.node.purposes,
    )?);
    let registry = Arc::new(Registry::new(&config.participants));
    let (store, log_sink) =
        Store::open(&config.database_url()?, &config.pool_settings(), true).await?;
    let store = store.claim_for_node(config.cache_bounds()).await?;
    // The directory never goes back, across a restart as across a reload:
    // the highest serial run with is kept in the database.
    if let Some(f) = &federation {
        let offered = f.serial();
        let seen = match store.directory_serial_seen(offered).await {
            Ok(seen) => seen,
            Err(e) => {
                store.close().await;
                return Err(e.into());
            }
        };
        if offered < seen {
            store.close().await;
            return Err(crate::federation::FederationError::BehindSeen { seen, offered }.into());
        }
    }
    let audit = match AuditLog::start(
        store.clone(),
        log_sink,
        keys.clone(),
        LogSettings {
            key_name: config.node.name.clone(),
            origin: crate::tlog::checkpoint::origin(&config.node.name),
            checkpoint_interval: Duration::from_millis(config.node.checkpoint_interval_ms),
        },
    )
    .await
    {
        Ok(audit) => audit,
        Err(e) => {
            // Let go of the database (a SQLite file's claim) at once,
            // so that the fix the error names can be run.
            store.close().await;
            return Err(e.into());
        }
    };
    let exchange = Arc::new(
        Exchange::new(
            config.node.name.clone(),
            store.clone(),
            keys,
            policy,
            registry.clone(),
            audit,
        )
        .with_identity_names(crate::rpc::identity_names)
        .with_statistics(
            config.statistics.settings(),
            config.statistics.requests_per_minute,
        )
        .with_consent_max_validity(config.consent.max_validity_ms())
        .with_ldv(config.processing_log.settings())
        .with_unregistered_records(config.limits.unregistered_records_per_certificate)
        .with_federation(federation.clone())
        .with_retention(retention.0, retention.1),
    );
    // Cases from before per-case keys get keys of their own before the
    // node serves, so no request meets one.
    let log = |line: &str| tracing::info!("{line}");
    exchange
        .move_legacy_cases(&log)
        .await
        .map_err(maintenance)?;
    Ok(Gateway {
        exchange,
        store,
        registry,
        federation,
        keys_dir,
    })
}

struct Gateway {
    exchange: Arc<Exchange>,
    store: Store,
    registry: Arc<Registry>,
    federation: Option<Arc<crate::federation::Federation>>,
    keys_dir: std::path::PathBuf,
}

/// What a node does to its stored cases on its own (`gateway::retention`),
/// every `retention.interval` and when asked: erase what is past its
/// retention period, re-wrap case keys under the newest data key version.
pub struct Upkeep(Arc<Exchange>);

impl Upkeep {
    /// Erases what is past its `[retention]` period now; each erasure is a
    /// `case.erase` record. `progress` receives a line per batch.
    pub async fn erase_due(
        &self,
        progress: crate::gateway::Progress<'_>,
    ) -> Result<crate::gateway::Erased, NodeError> {
        self.0.erase_due(progress).await.map_err(maintenance)
    }

    /// Re-wraps up to `max` case keys (all with `None`) under the newest
    /// data key version; answers how many are left.
    pub async fn rewrap_case_keys(
        &self,
        max: Option<u64>,
        progress: crate::gateway::Progress<'_>,
    ) -> Result<i64, NodeError> {
        self.0
            .rewrap_case_keys(max, progress)
            .await
            .map_err(maintenance)
    }

    /// Where the data key rotation stands (`sluis keys status`).
    pub async fn key_status(&self) -> Result<crate::gateway::KeyStatus, NodeError> {
        self.0.key_status().await.map_err(maintenance)
    }
}

fn maintenance(e: crate::gateway::ExchangeError) -> NodeError {
    NodeError::Maintenance(e.to_string())
}

/// A node's gateway opened for an operator's command on its host, without
/// listeners (`sluis erase --due`, `sluis keys status`): the same store
/// claim as a serving node, so on SQLite the node must be stopped.
pub struct Offline {
    exchange: Arc<Exchange>,
    store: Store,
}

impl Offline {
    pub async fn open(config: &Config) -> Result<Offline, NodeError> {
        let g = open_gateway(config).await?;
        Ok(Offline {
            exchange: g.exchange,
            store: g.store,
        })
    }

    /// Retention and the data key's upkeep on this node.
    pub fn upkeep(&self) -> Upkeep {
        Upkeep(self.exchange.clone())
    }

    /// Signs the log's tail and closes the store.
    pub async fn close(self) {
        self.exchange.sign_pending().await;
        self.store.close().await;
    }
}

impl Node {
    pub async fn start(config: &Config) -> Result<Node, NodeError> {
        let Gateway {
            exchange,
            store,
            registry,
            federation,
            keys_dir,
        } = open_gateway(config).await?;

        if config.processing_log.officer_key.is_none() {
            tracing::warn!(
                "processing_log.officer_key is not set: access records name no data subject id (see docs/processing-log.md)"
            );
        }
        let tls_files = config.tls_files();
        let (tls_tx, tls_rx) = watch::channel(tls::server_config(&tls_files, None)?);
        let (registry_tx, registry_rx) = watch::channel(registry);

        let addr = config.node.listen;
        let (listener, local_addr) = bind(addr).await?;
        let on_failure = on_handshake_failure(&exchange);
        let sources = Sources::new(config.source_limits());
        let incoming = tls::serve_tls(
            listener,
            tls_rx,
            registry_rx,
            config.accept_settings(),
            sources.clone(),
            on_failure,
        );
        let (gauge_sources, gauge_store) = (sources.clone(), store.clone());
        crate::telemetry::metrics::observe_node(crate::telemetry::metrics::NodeGauges {
            refused: Box::new(move || {
                Unauthenticated::ALL
                    .iter()
                    .map(|k| (k.as_str(), gauge_sources.total(*k)))
                    .collect()
            }),
            pool: Box::new(move || gauge_store.pool_use()),
        });
        let report_task = tokio::spawn(report_unauthenticated_every(
            config.unauthenticated_report_interval(),
            exchange.clone(),
            sources.clone(),
        ));

        let maintenance_task = tokio::spawn(maintain_every(
            config.retention.interval(),
            exchange.clone(),
            keys_dir.clone(),
        ));

        let max_age = config.max_connection_age();
        let keepalive = Duration::from_secs(config.limits.keepalive_secs);
        let server = Server::builder()
            .max_connection_age(max_age)
            .max_connection_age_grace(Duration::from_secs(10))
            .http2_keepalive_interval(Some(keepalive))
            .http2_keepalive_timeout(Some(keepalive))
            .max_concurrent_streams(Some(config.limits.max_concurrent_streams));
        let in_flight = crate::rpc::InFlight::new(
            config.limits.max_requests_in_flight,
            config.limits.max_requests_in_flight_per_caller,
        );
        let (routes, health) = crate::rpc::router(
            server,
            exchange.clone(),
            config.limits.max_message_bytes,
            Duration::from_millis(config.limits.message_timeout_ms),
            in_flight.clone(),
        )
        .await?;
        let probes = match config.probes.listen {
            None => None,
            Some(addr) => {
                let listener = TcpListener::bind(addr)
                    .await
                    .map_err(|source| NodeError::Listen { addr, source })?;
                let bound = listener
                    .local_addr()
                    .map_err(|source| NodeError::Listen { addr, source })?;
                let router = crate::rpc::probes_router(
                    Server::builder(),
                    &health,
                    config.limits.max_message_bytes,
                )?;
                let (stop, stop_rx) = oneshot::channel::<()>();
                let task = tokio::spawn(async move {
                    router
                        .serve_with_incoming_shutdown(
                            crate::net::plain::incoming(listener, PROBE_LIMITS),
                            async {
                                let _ = stop_rx.await;
                            },
                        )
                        .await?;
                    Ok(())
                });
                tracing::info!(probes = %bound, "probes listener (plain, health and reflection only)");
                Some((bound, stop, task))
            }
        };
        let federation_listener = match (&federation, &config.federation) {
            (Some(f), Some(c)) => match c.listen {
                Some(addr) => Some(
                    serve_federation(config, addr, f.clone(), exchange.clone(), in_flight.clone())
                        .await?,
                ),
                None => None,
            },
            _ => None,
        };
        // Witnessing: an alarm kept from before still says so; a node with
        // a witness key cosigns its peers every interval.
        let witness_task = match &federation {
            Some(f) => {
                if store
                    .witness_alarms()
                    .await
                    .is_ok_and(|a| a.iter().any(|a| a.open()))
                {
                    f.raise_alarm();
                }
                f.witness().is_some().then(|| {
                    tokio::spawn(crate::rpc::witness::every(
                        f.witness_interval(),
                        exchange.clone(),
                    ))
                })
            }
            None => None,
        };
        let federation_addr = federation_listener.as_ref().map(|l| l.addr);
        let probes_addr = probes.as_ref().map(|(a, _, _)| *a);
        let probes = probes.map(|(_, stop, task)| (stop, task));
        let health_task = tokio::spawn(health.follow(store.clone(), exchange.clone()));
        let (shutdown, shutdown_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            routes
                .serve_with_incoming_shutdown(ReceiverStream::new(incoming), async {
                    let _ = shutdown_rx.await;
                })
                .await?;
            Ok(())
        });
        tracing::info!(%local_addr, node = %config.node.name, participants = config.participants.len(), "sluis node serving");
        Ok(Node {
            local_addr,
            probes_addr,
            probes,
            federation_addr,
            federation_listener,
            witness_task,
            exchange,
            store,
            sources,
            in_flight,
            tls_files: std::sync::Mutex::new(tls_files),
            tls_tx,
            registry_tx,
            shutdown: Some(shutdown),
            task,
            health_task,
            report_task,
            maintenance_task,
            keys_dir,
            federation,
        })
    }

    /// Retention and the data key's upkeep on this node: what it does
    /// every `retention.interval`, run now.
    pub fn upkeep(&self) -> Upkeep {
        Upkeep(self.exchange.clone())
    }

    /// Re-reads the data key versions in the keys folder (a version
    /// `sluis keys rotate-data` made), as the node does every
    /// `retention.interval`.
    pub fn reload_data_keys(&self) -> Result<(), NodeError> {
        Ok(self.exchange.keys.reload_data_keys(&self.keys_dir)?)
    }

    /// The running federation directory, if the node is in a federation;
    /// [`Node::reload_federation`] takes a new one (SIGHUP).
    pub fn federation(&self) -> Option<&crate::federation::Federation> {
        self.federation.as_deref()
    }

    /// Reads the federation directory file again and takes it if it
    /// verifies, names this node, is valid now (not expired, not before its
    /// `not_before`) and has a serial no lower than the running one nor
    /// than the highest this node has run with; its serial is kept in the
    /// database **before** it is taken, so a restart never goes back to an
    /// older directory (and its old pins). Otherwise the running one stays.
    /// Independent of [`Node::reload`]: a bad directory does not hold back
    /// participants, policy and TLS files, nor they the directory. Either
    /// outcome is recorded in the access log (method
    /// `federation.directory`). Returns the serial now running; `None`
    /// outside a federation. Errors: `FederationError` saying why
    /// (`Unrecorded` when the database did not keep the serial).
    pub async fn reload_federation(
        &self,
    ) -> Result<Option<u64>, crate::federation::FederationError> {
        let Some(f) = self.federation.as_deref() else {
            return Ok(None);
        };
        let outcome = self.offer_federation(f).await;
        let detail = match &outcome {
            Ok(serial) => format!("federation directory serial {serial} taken"),
            Err(e) => format!(
                "federation directory not taken, serial {} stays: {e}",
                f.serial()
            ),
        };
        // The outcome stands whether or not it could be recorded; a
        // failure to record is in the node's log (`record_directory`).
        let _ = self
            .exchange
            .record_directory(outcome.is_ok(), detail)
            .await;
        outcome.map(Some)
    }

    async fn offer_federation(
        &self,
        f: &crate::federation::Federation,
    ) -> Result<u64, crate::federation::FederationError> {
        use crate::federation::FederationError;
        let offered = f.offer(crate::model::clock::now_millis())?;
        let serial = offered.directory.serial;
        let seen = self
            .store
            .directory_serial_seen(serial)
            .await
            .map_err(|e| FederationError::Unrecorded {
                serial,
                reason: e.to_string(),
            })?;
        if serial < seen {
            return Err(FederationError::BehindSeen {
                seen,
                offered: serial,
            });
        }
        f.take(offered)
    }

    /// [`Node::reload_federation`], with its outcome in the node's log
    /// (for the signal handler).
    pub async fn reload_federation_logged(&self) {
        match self.reload_federation().await {
            Ok(Some(serial)) => tracing::info!(serial, "federation directory reloaded"),
            Ok(None) => {}
            Err(e) => tracing::error!(
                error = %e,
                "federation directory not reloaded; the node keeps its running directory (participants, policy and TLS files are reloaded on their own)"
            ),
        }
    }

    /// Re-reads certificates, key and CRLs; new connections use them, and
    /// open connections are checked against them on their next request
    /// (`tls::CertCheck`).
    pub fn reload_tls(&self) -> Result<(), TlsError> {
        let files = self
            .tls_files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let running = self.tls_tx.borrow().clone();
        let config = tls::server_config(&files, Some(&running))?;
        self.tls_tx.send_replace(config);
        Ok(())
    }

    /// Re-reads the configuration at `path` for its participants, and the
    /// policy, certificates, key and CRLs it names; puts them in force
    /// together, or none of them. Refused, with what `sluis check-config`
    /// would report (the log's questions too: a renamed node, a keys folder
    /// behind the database), if the check finds an error — the federation
    /// directory aside, which [`Node::reload_federation`] takes or refuses
    /// on its own; refused if the new
    /// policy or TLS files do not load, or the reload cannot be recorded.
    /// Recorded in the access log (method `node.reload`, with the new
    /// policy's SHA-256) before the first request sees it. New connections
    /// are identified by the new registry; open ones keep the identity
    /// they were given until `limits.max_connection_age_secs` ends them,
    /// and are checked against the new certificates and CRLs on their
    /// next request. The TLS files are those the new configuration names
    /// (a CRL added to `tls.crl` counts from this reload); in a federation
    /// the peer CAs, peer CRLs and this node's certificate are re-read for
    /// both directions, the federation listener and calls to peers. Other
    /// settings (listen addresses, limits, database, telemetry, the
    /// directory's file and key) take a restart.
    pub async fn reload(&self, path: &std::path::Path) -> Result<Reloaded, ReloadError> {
        // A file cut short — read while an editor or a copy was still
        // writing it in place — parses as long as it ends between entries;
        // what gives it away is that every participant is gone. Said first,
        // with its likely cause and the safe way to write the file; the
        // check below refuses a node without participants as well.
        let running = self.registry_tx.borrow().participants().count();
        if running > 0 && Config::load(path).is_ok_and(|c| c.participants.is_empty()) {
            return Err(ReloadError::Check(vec![format!(
                "{}: names no participant while {running} are registered: the file looks cut short (read while it was being written?); the running configuration is kept. Write the new file beside it and rename it into place (docs/operations.md, \"Reload\")",
                path.display()
            )]));
        }
        // What `serve` would refuse at its next start is refused now: the
        // same check as `sluis check-config`, asked of this node's store.
        let report = crate::check::check_with_store(path, &self.store).await;
        if report.has_errors() {
            return Err(ReloadError::Check(
                report.errors().map(|f| f.to_string()).collect(),
            ));
        }
        let config = Config::load(path)?;
        let policy = Arc::new(Policy::load(
            &config.path(&config.node.policy),
            &config.node.purposes,
        )?);
        let registry = Arc::new(Registry::new(&config.participants));
        let tls_files = config.tls_files();
        let running = self.tls_tx.borrow().clone();
        let tls_config = tls::server_config(&tls_files, Some(&running))?;
        // The federation's TLS, both ways, loaded before anything is put
        // in force so that a bad file refuses the whole reload.
        let federation_tls = match (&self.federation_listener, config.federation_tls_files()) {
            (Some(l), Some(files)) => {
                let running = l.tls_tx.borrow().clone();
                Some(tls::server_config(&files, Some(&running))?)
            }
            _ => None,
        };
        let peer_tls = match (&self.federation, &config.federation) {
            (Some(_), Some(c)) => Some(
                crate::federation::Federation::peer_tls(c, &config.base_dir)
                    .map_err(ReloadError::Federation)?,
            ),
            _ => None,
        };

        let ids = |r: &Registry| -> std::collections::BTreeSet<String> {
            r.participants().map(|(p, _)| p.id.clone()).collect()
        };
        let (before, after) = (ids(&self.registry_tx.borrow()), ids(&registry));
        let reloaded = Reloaded {
            policy_sha256: hex::encode(policy.sha256()),
            participants: after.len(),
            added: after.difference(&before).cloned().collect(),
            removed: before.difference(&after).cloned().collect(),
        };
        let detail = format!(
            "reloaded: policy sha256 {}; {} participants (added: {}; removed: {}); TLS certificates and CRLs re-read",
            reloaded.policy_sha256,
            reloaded.participants,
            list_or_none(&reloaded.added),
            list_or_none(&reloaded.removed),
        );
        self.exchange
            .reload(policy, registry.clone(), detail)
            .await
            .map_err(|_| ReloadError::NotRecorded)?;
        self.tls_tx.send_replace(tls_config);
        *self.tls_files.lock().unwrap_or_else(|p| p.into_inner()) = tls_files;
        if let (Some(l), Some(c)) = (&self.federation_listener, federation_tls) {
            l.tls_tx.send_replace(c);
        }
        if let (Some(f), Some(t)) = (&self.federation, peer_tls) {
            f.set_peer_tls(t);
        }
        self.registry_tx.send_replace(registry);
        Ok(reloaded)
    }

    /// The node's signed-note verifier key (`<name>+<key id>+<base64 key>`,
    /// C2SP signed-note): what checks its receipts and checkpoints.
    pub fn verifier_key(&self) -> String {
        self.exchange.verifier_key()
    }

    /// Ends the current interval of connections without an accepted
    /// certificate now: writes one access record per source that had any
    /// (what the node otherwise does every `unauthenticated_report_secs`,
    /// and at shutdown). Returns how many records it wrote.
    pub async fn report_unauthenticated(&self) -> usize {
        report_unauthenticated(&self.exchange, &self.sources).await
    }

    /// One witnessing round now (what the node does every
    /// `witness_interval_secs`): each peer's latest checkpoint fetched,
    /// checked against the last one cosigned, cosigned and handed back, or
    /// an alarm raised. Per peer node id, what came of it; empty when the
    /// node does not witness.
    pub async fn witness_now(&self) -> Vec<(String, crate::federation::witness::WitnessOutcome)> {
        crate::rpc::witness::round(&self.exchange).await
    }

    /// Stops accepting, lets requests in flight finish, and waits.
    pub async fn shutdown(mut self) -> Result<(), NodeError> {
        self.health_task.abort();
        self.report_task.abort();
        self.maintenance_task.abort();
        if let Some(t) = self.witness_task.take() {
            t.abort();
        }
        if let Some((stop, task)) = self.probes.take() {
            let _ = stop.send(());
            if let Ok(Err(e)) = task.await {
                tracing::error!(error = %e, "probes listener ended with an error");
            }
        }
        if let Some(l) = self.federation_listener.take() {
            let _ = l.stop.send(());
            if let Ok(Err(e)) = l.task.await {
                tracing::error!(error = %e, "federation listener ended with an error");
            }
        }
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        let result = match self.task.await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "server task ended abnormally");
                Ok(())
            }
        };
        // Requests whose callers stopped waiting may still be at work:
        // they end, and are recorded, before the log is closed.
        self.in_flight.drained().await;
        // Requests have drained: summarise the last interval's connections
        // without a certificate, and cover the log's tail with a checkpoint.
        report_unauthenticated(&self.exchange, &self.sources).await;
        self.exchange.sign_pending().await;
        self.store.close().await;
        result
    }
}
