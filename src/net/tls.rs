//! All of TLS lives here: the rustls server configuration, the accept loop,
//! and the first look at the client certificate. Nothing else in the crate
//! touches rustls on the server side.
//!
//! We run our own acceptor instead of tonic's TLS because tonic's has no CRL
//! support, no reload and no handshake timeout, and logs failed handshakes
//! only at debug level. Here each handshake runs in its own task under a
//! timeout (one slow client cannot stall the others), a source has a bounded
//! number of handshakes in progress and a short time to send its first
//! byte, CRLs are enforced including their expiry (the newest per issuer
//! decides, `crate::net::crl`), the configuration can be swapped at run
//! time, and every refused handshake that presented a certificate is
//! reported to the caller of [`serve_tls`] so it can be audited with that
//! certificate's fingerprint. Connections that never present one are
//! counted per source ([`crate::net::sources`]), not reported one by one.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::DistinguishedName;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tonic::transport::server::Connected;

use crate::net::crl::{self, CrlError};
use crate::net::identity::{Peer, Registry};
use crate::net::sources::{InProgress, Source, Sources, Unauthenticated};
use crate::net::x509;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("{what} {path} holds no PEM item")]
    Empty { what: &'static str, path: PathBuf },
    #[error("TLS configuration refused: {0}")]
    Rustls(#[from] rustls::Error),
    /// The node's key is not the key of its certificate (or not usable).
    #[error("the node key {key} does not go with the node certificate {cert}: {reason}")]
    KeyPair {
        key: PathBuf,
        cert: PathBuf,
        reason: String,
    },
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error(transparent)]
    Crl(#[from] CrlError),
}

/// The files a TLS server configuration is built from.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: PathBuf,
    pub crls: Vec<PathBuf>,
    /// Serve although a client CA has no CRL (with a warning); otherwise
    /// that is refused at start and reload.
    pub allow_missing_crl: bool,
    /// The settings of `sluis.toml` that name the client CAs and CRLs, so
    /// that a message names the one to change.
    pub settings: TlsSettings,
}

/// The names of the settings a [`TlsFiles`] comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    pub cert: &'static str,
    pub key: &'static str,
    pub client_ca: &'static str,
    pub crl: &'static str,
    /// What `cert` is presented as: its extendedKeyUsage must allow it.
    pub cert_use: CertUse,
}

/// The side of a TLS connection a certificate is presented on, which its
/// extendedKeyUsage must allow (RFC 5280 §4.2.1.12; RFC 5246/8446 leave it
/// to the verifier, and webpki requires `serverAuth` of a server and
/// `clientAuth` of a client whenever the extension is there).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertUse {
    /// A listener's certificate (`id-kp-serverAuth`).
    Server,
    /// A certificate for calling (`id-kp-clientAuth`).
    Client,
}

impl TlsSettings {
    /// The node's listener for agencies (`[tls]`).
    pub const NODE: TlsSettings = TlsSettings {
        cert: "tls.cert",
        key: "tls.key",
        client_ca: "tls.client_ca",
        crl: "tls.crl",
        cert_use: CertUse::Server,
    };
    /// The federation listener (`[federation]`; the node's own server
    /// certificate).
    pub const FEDERATION: TlsSettings = TlsSettings {
        cert: "tls.cert",
        key: "tls.key",
        client_ca: "federation.peer_ca",
        crl: "federation.peer_crl",
        cert_use: CertUse::Server,
    };
    /// This node's side of calls to peers (`[federation]`): its certificate
    /// for calling, the peers' CAs and CRLs.
    pub const PEERS: TlsSettings = TlsSettings {
        cert: "federation.client_cert",
        key: "federation.client_key",
        client_ca: "federation.peer_ca",
        crl: "federation.peer_crl",
        cert_use: CertUse::Client,
    };
}

/// The one crypto provider of the process: ring. Passed explicitly so that
/// no process-wide default is needed (and none can be ambiguous).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub(crate) fn read_certs(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = crate::files::read(path, crate::files::Kind::Pem).map_err(|e| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source: rustls::pki_types::pem::Error::Io(e),
    })?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Read {
            what,
            path: path.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// A server configuration and the client-certificate verifier inside it,
/// kept at hand so that connections opened under an earlier configuration
/// can be checked again (see `CertCheck`).
#[derive(Debug)]
pub struct TlsConfig {
    server: Arc<ServerConfig>,
    client_verifier: Arc<dyn ClientCertVerifier>,
    /// The CRLs in force, so that a reload can be refused if it would
    /// un-revoke (`crl::no_rollback`).
    crls: Vec<crl::Deciding>,
}

/// Builds the server configuration: TLS 1.3 only, a client certificate from
/// one of the configured CAs required, CRLs enforced (expired CRLs refused;
/// of several CRLs from one issuer the newest decides, and which one does
/// is logged — see `crl`); every client CA must have a CRL unless
/// `files.allow_missing_crl`.
///
/// `running`: the configuration in force, on a reload. A set of CRLs that
/// lacks a scope the running one has, or holds an older CRL for it
/// (RFC 5280 §5.2.3 cRLNumber, else thisUpdate), is refused: emptying or
/// rolling back the CRL file must not un-revoke anyone.
pub fn server_config(
    files: &TlsFiles,
    running: Option<&TlsConfig>,
) -> Result<Arc<TlsConfig>, TlsError> {
    let provider = provider();
    let chain = read_certs("node certificate", &files.cert)?;
    let key_pem =
        crate::files::read(&files.key, crate::files::Kind::Pem).map_err(|e| TlsError::Read {
            what: "node key",
            path: files.key.clone(),
            source: rustls::pki_types::pem::Error::Io(e),
        })?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|source| TlsError::Read {
        what: "node key",
        path: files.key.clone(),
        source,
    })?;
    let cas = read_certs("client CA", &files.client_ca)?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in &cas {
        roots.add(ca.clone())?;
    }
    let deciding = crl::select(&crl::read(&files.crls)?, &cas, &provider)?;
    if let Some(running) = running {
        crl::no_rollback(&running.crls, &deciding)?;
    }
    crl::require_each_ca(&deciding, &cas, files.allow_missing_crl, files.settings.crl)?;
    for d in &deciding {
        d.log();
    }
    let in_force = deciding.clone();
    let mut builder =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    if !deciding.is_empty() {
        builder = builder
            .with_crls(deciding.into_iter().map(|d| d.der))
            .enforce_revocation_expiration();
    }
    let client_verifier = builder.build()?;
    let verifier = Arc::new(Recording {
        inner: client_verifier.clone(),
    });
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::KeyPair {
            key: files.key.clone(),
            cert: files.cert.clone(),
            reason: match e {
                rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                    "the certificate's public key is another key's; use the key it was issued for"
                        .into()
                }
                other => other.to_string(),
            },
        })?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(TlsConfig {
        server: Arc::new(config),
        client_verifier,
        crls: in_force,
    }))
}

/// Keeps a connection's client certificate answerable to the node's current
/// TLS configuration. A reload (new CRLs, a CA removed) applies to new
/// handshakes at once; an open connection is checked again, with the
/// configuration then current, on its first request after the reload, and
/// refused from then on if its certificate no longer passes.
#[derive(Clone, Debug)]
pub(crate) struct CertCheck {
    chain: Arc<[CertificateDer<'static>]>,
    current: watch::Receiver<Arc<TlsConfig>>,
    /// The configuration the chain last passed under.
    passed: Arc<std::sync::Mutex<Arc<TlsConfig>>>,
}

/// Why an open connection's certificate no longer passes (see
/// `CertCheck`).
#[derive(Clone, Debug, thiserror::Error)]
pub enum CertRejected {
    /// The connection holds no certificate (mandatory client auth makes
    /// this impossible; refused all the same).
    #[error("no client certificate")]
    Missing,
    /// The verifier of the current configuration refuses the chain
    /// (revoked, expired, or its CA no longer configured): the verifier's
    /// reason as text, so no TLS library type leaves `net`.
    #[error("{0}")]
    Refused(String),
}

impl CertCheck {
    /// `Err` with the verifier's reason when the certificate no longer
    /// passes the current configuration.
    pub(crate) fn still_valid(&self) -> Result<(), CertRejected> {
        let current = self.current.borrow().clone();
        let mut passed = self.passed.lock().unwrap_or_else(|p| p.into_inner());
        if Arc::ptr_eq(&current, &passed) {
            return Ok(());
        }
        let Some((end_entity, intermediates)) = self.chain.split_first() else {
            return Err(CertRejected::Missing);
        };
        match current
            .client_verifier
            .verify_client_cert(end_entity, intermediates, UnixTime::now())
        {
            Ok(_) => {
                *passed = current;
                Ok(())
            }
            Err(e) => Err(CertRejected::Refused(e.to_string())),
        }
    }
}

tokio::task_local! {
    /// Fingerprint of the certificate the client presented during the
    /// handshake running in this task, so that a refused handshake can be
    /// audited with it. rustls gives the verifier no per-connection context;
    /// a task-local set around each handshake is the narrowest place.
    static PRESENTED: RefCell<Option<String>>;
}

/// Delegates to the webpki verifier and notes the presented certificate.
#[derive(Debug)]
struct Recording {
    inner: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for Recording {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }
    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let _ = PRESENTED.try_with(|p| *p.borrow_mut() = Some(x509::cert_sha256_hex(end_entity)));
        self.inner
            .verify_client_cert(end_entity, intermediates, now)
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A refused TLS handshake in which the client presented a certificate,
/// for the access log: evidence of who tried. (Connections that never
/// present one are summarised per source instead: [`Sources`].)
#[derive(Clone, Debug)]
pub struct HandshakeFailure {
    /// Lowercase hex SHA-256 of the certificate presented.
    pub(crate) fingerprint: String,
    pub(crate) reason: String,
}

/// What a request's extensions carry about its connection.
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    pub peer: Peer,
    /// The client certificate, checked again after a TLS reload.
    pub(crate) cert: CertCheck,
    /// Whether a request runs on the connection, for its idle timeout:
    /// the request layer holds a [`Running`] for each.
    pub(crate) activity: Arc<Activity>,
}

/// Whether a connection is at work, so that one on which no request runs
/// is closed after a while ([`AcceptSettings::idle_timeout`]) instead of
/// holding its connection slot for as long as its peer likes. Bytes are no
/// measure: a peer can answer HTTP/2 pings forever without asking anything.
#[derive(Debug)]
pub(crate) struct Activity {
    start: tokio::time::Instant,
    running: AtomicUsize,
    /// Milliseconds after `start` at which the connection last became idle.
    idle_since: AtomicU64,
    /// Whether a request has ended on it.
    ended: AtomicBool,
    /// How long it may stay idle.
    timeout: Duration,
    /// The idle clock starts at the first request's end and is not started
    /// again by later ones: an unregistered certificate is refused
    /// whatever it asks, so its connection closes soon after its first
    /// refusal however many requests it keeps sending.
    once: bool,
}

impl Activity {
    fn new(timeout: Duration, once: bool) -> Arc<Activity> {
        Arc::new(Activity {
            start: tokio::time::Instant::now(),
            running: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            ended: AtomicBool::new(false),
            timeout,
            once,
        })
    }

    /// Counts a request running on the connection until the guard drops.
    pub(crate) fn running(self: &Arc<Self>) -> Running {
        self.running.fetch_add(1, Ordering::SeqCst);
        Running(self.clone())
    }

    /// When the connection is to be closed, if nothing runs on it until then.
    fn deadline(&self) -> Option<tokio::time::Instant> {
        if self.running.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let idle = Duration::from_millis(self.idle_since.load(Ordering::SeqCst));
        Some(self.start + idle + self.timeout)
    }
}

/// A request running on a connection (see [`Activity`]).
#[derive(Debug)]
pub(crate) struct Running(Arc<Activity>);

impl Drop for Running {
    fn drop(&mut self) {
        let a = &self.0;
        let again = a.ended.swap(true, Ordering::SeqCst);
        if !(a.once && again) {
            let ms = u64::try_from(a.start.elapsed().as_millis()).unwrap_or(u64::MAX);
            a.idle_since.store(ms, Ordering::SeqCst);
        }
        a.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A TLS stream whose client has been identified. It holds one of the
/// listener's open-connection slots, and one of its source's, until it is
/// dropped, and reads as ended once it has been idle too long.
pub struct IdentifiedStream {
    inner: TlsStream<TcpStream>,
    info: ConnectionInfo,
    idle: Pin<Box<tokio::time::Sleep>>,
    _open: Option<(OwnedSemaphorePermit, InProgress)>,
}

impl Connected for IdentifiedStream {
    type ConnectInfo = ConnectionInfo;
    fn connect_info(&self) -> ConnectionInfo {
        self.info.clone()
    }
}

impl AsyncRead for IdentifiedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        // HTTP/2 always has a read pending, so the idle timer is polled
        // here; at its deadline with no request running, the stream reads
        // as ended and the server closes the connection.
        while this.idle.as_mut().poll(cx).is_ready() {
            let now = tokio::time::Instant::now();
            match this.info.activity.deadline() {
                Some(at) if at <= now => {
                    tracing::debug!("idle connection closed");
                    return Poll::Ready(Ok(()));
                }
                Some(at) => this.idle.as_mut().reset(at),
                None => this.idle.as_mut().reset(now + this.info.activity.timeout),
            }
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for IdentifiedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// How the accept loop is tuned.
#[derive(Clone, Debug)]
pub struct AcceptSettings {
    /// From the first byte to a finished handshake.
    pub(crate) handshake_timeout: Duration,
    /// From accepting the connection to its first byte. A TLS client
    /// speaks first, at once; waiting longer only lets silent connections
    /// hold handshake slots.
    pub(crate) first_byte_timeout: Duration,
    /// Handshakes in progress at once, from all sources; further
    /// connections wait in the listen backlog.
    pub(crate) max_handshakes: usize,
    /// Connections open at once, handshakes in progress included; at the
    /// limit a further connection is closed at once (and a warning
    /// logged, at most every few seconds). Each costs its TLS and HTTP/2
    /// state, so this bounds the memory open connections hold. Per source
    /// the limit is `SourceLimits::max_connections_per_source`.
    pub(crate) max_connections: usize,
    /// A connection on which no request has run for this long is closed.
    pub(crate) idle_timeout: Duration,
    /// A connection with an unregistered certificate is closed this long
    /// after its first request ends (or after it is accepted, if it asks
    /// nothing): every request it makes is refused anyway.
    pub(crate) unregistered_linger: Duration,
}

/// The first byte of a TLS record that carries a handshake message
/// (RFC 8446 §5.1, ContentType handshake(22)): what a ClientHello starts with.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Accepts TCP connections, runs each TLS handshake in its own task, and
/// yields identified streams for `serve_with_incoming`. The TLS config and
/// the registry are read from watch channels at each accept, so a reload
/// applies to the next connection.
///
/// A source beyond its handshakes in progress is closed at once; a
/// connection silent for `first_byte_timeout`, or whose first byte is not
/// TLS, is closed; every connection that ends without presenting a
/// certificate is counted in `sources`. Refused handshakes that presented a
/// certificate go to `on_failure` (as many per source and interval as
/// `sources` allows; the rest are counted there too).
pub fn serve_tls(
    listener: TcpListener,
    config: watch::Receiver<Arc<TlsConfig>>,
    registry: watch::Receiver<Arc<Registry>>,
    settings: AcceptSettings,
    sources: Arc<Sources>,
    on_failure: Arc<dyn Fn(HandshakeFailure) + Send + Sync>,
) -> mpsc::Receiver<Result<IdentifiedStream, io::Error>> {
    let (tx, rx) = mpsc::channel(128);
    let slots = Arc::new(Semaphore::new(settings.max_handshakes.max(1)));
    let open = Arc::new(Semaphore::new(settings.max_connections.max(1)));
    tokio::spawn(async move {
        loop {
            // When the server stops (the receiver is dropped), stop
            // accepting at once, so the port closes with it.
            let permit = tokio::select! {
                _ = tx.closed() => return,
                p = slots.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            let accepted = tokio::select! {
                _ = tx.closed() => return,
                a = listener.accept() => a,
            };
            let (tcp, remote) = match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: back off, go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let source = Source::of(remote.ip());
            // At a connection limit a connection is closed at once rather
            // than left waiting in the backlog: its client learns at once.
            let Some(per_source) = sources.open(source) else {
                sources.count(source, Unauthenticated::OverConnectionLimit);
                sources.limit_reached("limits.max_connections_per_source", source);
                continue;
            };
            let Ok(connection) = open.clone().try_acquire_owned() else {
                sources.count(source, Unauthenticated::OverConnectionLimit);
                sources.limit_reached("limits.max_connections", source);
                continue;
            };
            let Some(in_progress) = sources.begin(source) else {
                // Closed here, before any task: a flood from one source
                // costs an accept and a close, and holds nothing.
                sources.count(source, Unauthenticated::OverLimit);
                tracing::debug!(%remote, "too many handshakes in progress from this source; closed");
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let handshake = Handshake {
                tls: config.borrow().clone(),
                current: config.clone(),
                registry: registry.borrow().clone(),
                settings: settings.clone(),
                sources: sources.clone(),
                on_failure: on_failure.clone(),
                remote,
                source,
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Some(mut stream) = handshake.run(tcp).await {
                    stream._open = Some((connection, per_source));
                    let _ = tx.send(Ok(stream)).await;
                }
                // The slots are held until the stream is handed over;
                // tonic bounds the rest.
                drop(in_progress);
                drop(permit);
            });
        }
    });
    rx
}

/// One connection's way from accepted to identified (or refused).
struct Handshake {
    tls: Arc<TlsConfig>,
    current: watch::Receiver<Arc<TlsConfig>>,
    registry: Arc<Registry>,
    settings: AcceptSettings,
    sources: Arc<Sources>,
    on_failure: Arc<dyn Fn(HandshakeFailure) + Send + Sync>,
    remote: SocketAddr,
    source: Source,
}

impl Handshake {
    async fn run(self, tcp: TcpStream) -> Option<IdentifiedStream> {
        let remote = self.remote;
        // A TLS client speaks first. A connection that closes or stays
        // silent (a load balancer's TCP check, a port scan, a slot
        // squatter), or whose first byte is no TLS handshake, is counted
        // and closed without running TLS at all.
        let mut first = [0u8; 1];
        let peeked = tokio::time::timeout(self.settings.first_byte_timeout, tcp.peek(&mut first));
        match peeked.await {
            Ok(Ok(n)) if n > 0 && first[0] == TLS_HANDSHAKE_RECORD => {}
            Ok(Ok(n)) if n > 0 => return self.unauthenticated(Unauthenticated::NotTls, "not TLS"),
            _ => return self.unauthenticated(Unauthenticated::Silent, "no byte"),
        }
        let acceptor = TlsAcceptor::from(self.tls.server.clone());
        let timeout = self.settings.handshake_timeout;
        let (result, presented) = PRESENTED
            .scope(RefCell::new(None), async move {
                let result =
                    tokio::time::timeout(timeout, acceptor.accept(tcp).into_fallible()).await;
                (result, PRESENTED.with(|p| p.borrow_mut().take()))
            })
            .await;
        let error = match result {
            Ok(Ok(stream)) => {
                let chain: Arc<[CertificateDer<'static>]> = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .unwrap_or_default()
                    .iter()
                    .map(|c| c.clone().into_owned())
                    .collect();
                // None is unreachable with a mandatory client-auth
                // verifier; refuse rather than assume.
                let Some(end_entity) = chain.first() else {
                    return self.unauthenticated(Unauthenticated::NoCertificate, "no certificate");
                };
                let peer = self.registry.identify(end_entity);
                let cert = CertCheck {
                    chain,
                    current: self.current,
                    passed: Arc::new(std::sync::Mutex::new(self.tls)),
                };
                let activity = match peer {
                    Peer::Unregistered { .. } => {
                        Activity::new(self.settings.unregistered_linger, true)
                    }
                    Peer::Registered(_) => Activity::new(self.settings.idle_timeout, false),
                };
                let idle = Box::pin(tokio::time::sleep(activity.timeout));
                let info = ConnectionInfo {
                    peer,
                    cert,
                    activity,
                };
                return Some(IdentifiedStream {
                    inner: stream,
                    info,
                    idle,
                    _open: None,
                });
            }
            Ok(Err((e, tcp))) => {
                close_after_alert(tcp);
                Some(e)
            }
            Err(_) => None,
        };
        let reason = match &error {
            Some(e) => e.to_string(),
            None => format!("handshake not finished within {} ms", timeout.as_millis()),
        };
        let Some(fingerprint) = presented else {
            let kind = match error.as_ref().and_then(rustls_error) {
                Some(rustls::Error::NoCertificatesPresented) => Unauthenticated::NoCertificate,
                Some(_) => Unauthenticated::TlsRefused,
                None => Unauthenticated::Incomplete,
            };
            return self.unauthenticated(kind, &reason);
        };
        crate::telemetry::metrics::certificate_refused(refusal_reason(
            error.as_ref().and_then(rustls_error),
        ));
        if self
            .sources
            .record_refused_certificate(self.source, &fingerprint)
        {
            tracing::info!(%remote, %fingerprint, %reason, "TLS handshake refused");
            (self.on_failure)(HandshakeFailure {
                fingerprint,
                reason,
            });
        } else {
            tracing::debug!(%remote, %fingerprint, %reason, "TLS handshake refused; counted, already recorded");
        }
        None
    }

    fn unauthenticated(&self, kind: Unauthenticated, why: &str) -> Option<IdentifiedStream> {
        self.sources.count(self.source, kind);
        tracing::debug!(remote = %self.remote, kind = kind.as_str(), why, "connection without a client certificate closed");
        None
    }
}

/// Most a refused connection is read after its alert, and for how long.
const DRAIN_BYTES: usize = 64 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// Closes the connection of a refused handshake so that the client reads
/// the alert (why it was refused). In TLS 1.3 a client sends its first
/// request right after its half of the handshake, before the server has
/// judged its certificate; closing a socket with those bytes unread sends
/// a TCP reset, on which the client's kernel drops the alert unread, and
/// the client sees "connection reset" or "operation was canceled" instead
/// of the refusal — sometimes, by timing. So: the alert (tokio-rustls has
/// written it), then FIN, then what the client still sends is read and
/// dropped (at most [`DRAIN_BYTES`] for [`DRAIN_TIME`]) before the close,
/// in a task of its own.
fn close_after_alert(mut tcp: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tokio::spawn(async move {
        let _ = tcp.shutdown().await;
        let drain = async {
            let mut buf = [0u8; 4096];
            let mut total = 0;
            while let Ok(n) = tcp.read(&mut buf).await {
                total += n;
                if n == 0 || total >= DRAIN_BYTES {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
    });
}

/// The rustls error inside an I/O error from tokio-rustls, if it is one.
/// Why a handshake that presented a certificate was refused, from a
/// closed set: the `reason` of the `sluis.tls.refused.certificate`
/// metric. `error`: the TLS error, `None` when the handshake did not
/// finish in time.
pub(crate) fn refusal_reason(error: Option<&rustls::Error>) -> &'static str {
    use rustls::CertificateError as C;
    match error {
        None => "timeout",
        Some(rustls::Error::NoCertificatesPresented) => "no_client_certificate",
        Some(rustls::Error::InvalidCertificate(c)) => match c {
            C::Expired | C::ExpiredContext { .. } => "expired",
            C::NotValidYet | C::NotValidYetContext { .. } => "not_yet_valid",
            C::UnknownIssuer => "unknown_ca",
            C::Revoked => "revoked",
            C::UnknownRevocationStatus
            | C::ExpiredRevocationList
            | C::ExpiredRevocationListContext { .. } => "revocation_unknown",
            C::BadSignature
            | C::UnsupportedSignatureAlgorithmContext { .. }
            | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => "bad_signature",
            C::InvalidPurpose | C::InvalidPurposeContext { .. } => "wrong_purpose",
            C::ApplicationVerificationFailure | C::Other(_) => "not_accepted",
            _ => "invalid_certificate",
        },
        Some(_) => "tls_error",
    }
}

fn rustls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

#[cfg(test)]
mod tests {
    use super::refusal_reason;
    use rustls::{CertificateError as C, Error};

    /// The metric's reason is one of a closed set, and says which fault
    /// the operator has to look at.
    #[test]
    fn refused_certificates_are_counted_by_a_closed_set_of_reasons() {
        let cases = [
            (Some(Error::InvalidCertificate(C::Expired)), "expired"),
            (
                Some(Error::InvalidCertificate(C::NotValidYet)),
                "not_yet_valid",
            ),
            (
                Some(Error::InvalidCertificate(C::UnknownIssuer)),
                "unknown_ca",
            ),
            (Some(Error::InvalidCertificate(C::Revoked)), "revoked"),
            (
                Some(Error::InvalidCertificate(C::ExpiredRevocationList)),
                "revocation_unknown",
            ),
            (
                Some(Error::InvalidCertificate(C::BadSignature)),
                "bad_signature",
            ),
            (
                Some(Error::InvalidCertificate(C::InvalidPurpose)),
                "wrong_purpose",
            ),
            (
                Some(Error::InvalidCertificate(C::BadEncoding)),
                "invalid_certificate",
            ),
            (
                Some(Error::NoCertificatesPresented),
                "no_client_certificate",
            ),
            (Some(Error::DecryptError), "tls_error"),
            (None, "timeout"),
        ];
        for (error, reason) in cases {
            assert_eq!(refusal_reason(error.as_ref()), reason, "{error:?}");
        }
    }
}
