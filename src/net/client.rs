//! The client side of mutual TLS: a channel to a node, for the demo, the
//! tests and tools. The typed service clients on top of it are in
//! `rpc::Clients`.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// PEM material a participant's back-end holds.
#[derive(Clone, Debug)]
pub struct ClientPem {
    pub ca: String,
    /// Client certificate and key; None connects without one (to show that
    /// the node refuses it).
    pub identity: Option<(String, String)>,
}

/// Connects to a node at `addr`, checking its certificate for `server_name`.
pub async fn connect(
    addr: SocketAddr,
    server_name: &str,
    pem: &ClientPem,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pem.ca))
        .domain_name(server_name);
    if let Some((cert, key)) = &pem.identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    Endpoint::from_shared(format!("https://{addr}"))?
        .tls_config(tls)?
        .connect()
        .await
}

/// A bare mTLS stream to a node (TLS 1.3, ALPN `h2`), for speaking HTTP/2
/// by hand: tests and tools that must send what a gRPC client never would
/// (broken framing, a wrong content-type, bytes that do not decode).
///
/// Errors: bad PEM (`InvalidInput`), or the connection or handshake failing.
pub async fn connect_h2_stream(
    addr: SocketAddr,
    server_name: &str,
    pem: &ClientPem,
) -> std::io::Result<TlsStream<TcpStream>> {
    connect_h2_over(TcpStream::connect(addr).await?, server_name, pem).await
}

/// [`connect_h2_stream`] over a TCP connection the caller opened (from an
/// address of its choice, say).
pub async fn connect_h2_over(
    tcp: TcpStream,
    server_name: &str,
    pem: &ClientPem,
) -> std::io::Result<TlsStream<TcpStream>> {
    let invalid = |e: &dyn std::fmt::Display| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())
    };
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(pem.ca.as_bytes()) {
        roots
            .add(ca.map_err(|e| invalid(&e))?)
            .map_err(|e| invalid(&e))?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(crate::net::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| invalid(&e))?
        .with_root_certificates(roots);
    let mut config = match &pem.identity {
        Some((cert, key)) => {
            let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| invalid(&e))?;
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|e| invalid(&e))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| invalid(&e))?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let name = ServerName::try_from(server_name.to_string()).map_err(|e| invalid(&e))?;
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}
