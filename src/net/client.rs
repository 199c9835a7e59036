//! The client side of mutual TLS: a channel to a node, for the demo, the
//! tests and tools. The typed service clients on top of it are in
//! `rpc::Clients`.

use std::net::SocketAddr;

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
