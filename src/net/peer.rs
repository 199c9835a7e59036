//! The client side of node-to-node mutual TLS: how a node calls a peer node
//! of its federation.
//!
//! The peer's server certificate must chain to one of the peer CAs
//! (`[federation] peer_ca`, with their CRLs where given), name the server
//! name the directory gives, **and** carry the key the directory pins for
//! that node ([`PinnedServerVerifier`]): a certificate from any peer CA
//! cannot pose as another node, just as the federation listener admits a
//! calling node only by its pinned key. The pin is passed per connection
//! from the directory in force, so a reload changes it for every new
//! connection; no connection is kept between calls.
//!
//! A refusal is typed ([`PeerTlsError`]) so the caller can say who must
//! fix it. In TLS 1.3 the server judges the client certificate after the
//! client's handshake has ended, so a peer that refuses this node's
//! certificate is seen only on the first read: [`PeerTls::connect`] reads
//! what the peer sends first before handing the stream to HTTP/2, and
//! [`Session`] keeps any alert that comes later, for the caller to name
//! when its call fails.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint};

use crate::net::crl;
use crate::net::tls::{self, TlsError};
use crate::net::x509;

/// How long a peer has to accept the connection and finish the handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Room for the peer's first bytes (its HTTP/2 SETTINGS frame, a few dozen).
const FIRST_READ: usize = 4096;

/// This node's side of node-to-node TLS: the peer CAs (and their CRLs) and
/// this node's certificate and key. Read once at start.
pub struct PeerTls {
    webpki: Arc<WebPkiServerVerifier>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

/// Why a connection to a peer node failed.
#[derive(Debug, thiserror::Error)]
pub enum PeerTlsError {
    /// No TCP connection, or no answer in time: may pass by itself.
    #[error("{0}")]
    Unreachable(String),
    /// The peer's certificate carries another key than the directory pins
    /// for it (hex SHA-256 of its SubjectPublicKeyInfo).
    #[error(
        "its server certificate's key (SHA-256 {presented}) is not the one the federation directory pins for it ({pinned})"
    )]
    NotPinned { presented: String, pinned: String },
    /// The peer's certificate does not verify against the peer CAs, or not
    /// for the directory's server name, or is expired or revoked.
    #[error("its server certificate is refused: {0}")]
    Certificate(String),
    /// The peer refused this node's certificate (the TLS alert it sent).
    #[error("it refused this node's certificate (TLS alert {0})")]
    RefusedOurs(String),
    /// Anything else in TLS.
    #[error("TLS failed: {0}")]
    Tls(String),
}

/// The pin check: webpki's verification (chain to a peer CA, server name,
/// validity, CRLs), then the end-entity certificate's SPKI SHA-256 against
/// the directory's `tls-spki` for the node called.
#[derive(Debug)]
pub struct PinnedServerVerifier {
    inner: Arc<WebPkiServerVerifier>,
    /// Lower-case hex SHA-256 of the SubjectPublicKeyInfo.
    pin: String,
}

/// The error inside `CertificateError::Other` for a key that is not pinned.
#[derive(Debug, thiserror::Error)]
#[error("not the pinned key")]
struct PinMismatch {
    presented: String,
}

impl ServerCertVerifier for PinnedServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        let presented = x509::spki_sha256_hex(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if !presented.eq_ignore_ascii_case(&self.pin) {
            return Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(PinMismatch { presented })),
            )));
        }
        Ok(verified)
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

impl PeerTls {
    /// Reads the peer CAs (`peer_ca`, PEM), their CRLs (`peer_crl`; the
    /// newest per issuer decides, as on the listener; a CA without one is
    /// checked without), this node's certificate chain and key. Errors name
    /// the file.
    pub fn load(
        peer_ca: &Path,
        peer_crl: &[std::path::PathBuf],
        cert: &Path,
        key: &Path,
    ) -> Result<PeerTls, TlsError> {
        let provider = tls::provider();
        let cas = tls::read_certs("peer CA", peer_ca)?;
        let mut roots = rustls::RootCertStore::empty();
        for ca in &cas {
            roots.add(ca.clone())?;
        }
        let deciding = crl::select(&crl::read(peer_crl)?, &cas, &provider)?;
        let mut builder = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider);
        if !deciding.is_empty() {
            builder = builder
                .with_crls(deciding.into_iter().map(|d| d.der))
                .enforce_revocation_expiration()
                .allow_unknown_revocation_status();
        }
        let webpki = builder
            .build()
            .map_err(|e| TlsError::Rustls(rustls::Error::General(e.to_string())))?;
        let chain = tls::read_certs("node certificate for calling peers", cert)?;
        let key_pem =
            crate::files::read(key, crate::files::Kind::Pem).map_err(|e| TlsError::Read {
                what: "node key for calling peers",
                path: key.to_path_buf(),
                source: rustls::pki_types::pem::Error::Io(e),
            })?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|source| TlsError::Read {
            what: "node key for calling peers",
            path: key.to_path_buf(),
            source,
        })?;
        Ok(PeerTls { webpki, chain, key })
    }

    /// Connects to a peer at `addr` (TLS 1.3, ALPN `h2`, this node's
    /// certificate), its server certificate checked for `server_name` and
    /// its key against `pin` (hex SHA-256 of the SPKI, the directory's
    /// `tls-spki`). The handshake ends before this returns; the channel
    /// uses that one connection and does not reconnect.
    pub async fn connect(
        &self,
        addr: SocketAddr,
        server_name: &str,
        pin: &str,
    ) -> Result<(Channel, Session), PeerTlsError> {
        let verifier = Arc::new(PinnedServerVerifier {
            inner: self.webpki.clone(),
            pin: pin.to_string(),
        });
        let mut config = rustls::ClientConfig::builder_with_provider(tls::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| PeerTlsError::Tls(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| PeerTlsError::Tls(e.to_string()))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        let name = ServerName::try_from(server_name.to_string())
            .map_err(|e| PeerTlsError::Tls(format!("server name '{server_name}': {e}")))?;
        let handshake = async {
            let tcp = TcpStream::connect(addr)
                .await
                .map_err(|e| PeerTlsError::Unreachable(e.to_string()))?;
            TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await
                .map_err(|e| match classify(&e) {
                    PeerTlsError::NotPinned { presented, .. } => PeerTlsError::NotPinned {
                        presented,
                        pinned: pin.to_ascii_lowercase(),
                    },
                    other => other,
                })
        };
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, handshake)
            .await
            .map_err(|_| {
                PeerTlsError::Unreachable(format!(
                    "no TLS connection within {} s",
                    CONNECT_TIMEOUT.as_secs()
                ))
            })??;
        // In TLS 1.3 the peer judges this node's certificate after our side
        // of the handshake has ended: its verdict is the first thing it
        // sends, an alert or (an HTTP/2 server speaks first) its SETTINGS.
        // Reading it before the HTTP/2 client writes keeps the alert from
        // being lost to a reset when our preface meets a closed socket.
        let mut stream = stream;
        let mut first = vec![0u8; FIRST_READ];
        let n = tokio::time::timeout(CONNECT_TIMEOUT, stream.read(&mut first))
            .await
            .map_err(|_| {
                PeerTlsError::Unreachable(format!(
                    "no HTTP/2 settings within {} s of the handshake",
                    CONNECT_TIMEOUT.as_secs()
                ))
            })?
            .map_err(|e| classify(&e))?;
        if n == 0 {
            return Err(PeerTlsError::Unreachable(
                "it closed the connection right after the handshake".into(),
            ));
        }
        first.truncate(n);
        let session = Session::default();
        let once = Mutex::new(Some(Watched {
            inner: stream,
            first,
            session: session.clone(),
        }));
        let connector = tower::service_fn(move |_: http::Uri| {
            let stream = once.lock().ok().and_then(|mut s| s.take());
            async move {
                stream
                    .map(hyper_util::rt::TokioIo::new)
                    .ok_or_else(|| io::Error::other("a node-to-node channel connects once"))
            }
        });
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| PeerTlsError::Tls(e.to_string()))?
            .connect_with_connector(connector)
            .await
            .map_err(|e| PeerTlsError::Unreachable(e.to_string()))?;
        Ok((channel, session))
    }
}

/// What a connection to a peer saw after its handshake: the TLS alert the
/// peer sent when it refused this node's certificate, if it did.
#[derive(Clone, Default)]
pub struct Session(Arc<Mutex<Option<PeerTlsError>>>);

impl Session {
    /// The refusal the peer sent on this connection, if any.
    pub fn refusal(&self) -> Option<PeerTlsError> {
        let seen = self.0.lock().ok()?;
        match seen.as_ref()? {
            PeerTlsError::RefusedOurs(a) => Some(PeerTlsError::RefusedOurs(a.clone())),
            other => Some(PeerTlsError::Tls(other.to_string())),
        }
    }
}

/// The TLS stream, noting the first read error that carries a TLS alert.
struct Watched<S> {
    inner: S,
    /// What the peer sent first, read before the HTTP/2 client took over.
    first: Vec<u8>,
    session: Session,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.first.is_empty() {
            let k = buf.remaining().min(self.first.len());
            buf.put_slice(&self.first[..k]);
            self.first.drain(..k);
            return Poll::Ready(Ok(()));
        }
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Err(e)) = &r
            && let Some(rustls::Error::AlertReceived(_)) = rustls_error(e)
            && let Ok(mut seen) = self.session.0.lock()
            && seen.is_none()
        {
            *seen = Some(classify(e));
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
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
}

fn rustls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

/// A handshake's or read's error as the kind of refusal it is.
fn classify(e: &io::Error) -> PeerTlsError {
    let Some(tls) = rustls_error(e) else {
        return PeerTlsError::Unreachable(e.to_string());
    };
    match tls {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(o))) => {
            match o.downcast_ref::<PinMismatch>() {
                Some(m) => PeerTlsError::NotPinned {
                    presented: m.presented.clone(),
                    pinned: String::new(),
                },
                None => PeerTlsError::Certificate(tls.to_string()),
            }
        }
        rustls::Error::InvalidCertificate(_) => PeerTlsError::Certificate(tls.to_string()),
        rustls::Error::AlertReceived(alert) => PeerTlsError::RefusedOurs(format!("{alert:?}")),
        other => PeerTlsError::Tls(other.to_string()),
    }
}
