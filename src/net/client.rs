//! A gRPC client over mutual TLS, for the demo, the tests and tools.

use std::net::SocketAddr;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::rpc::proto::v1::audit_service_client::AuditServiceClient;
use crate::rpc::proto::v1::case_service_client::CaseServiceClient;
use crate::rpc::proto::v1::consent_service_client::ConsentServiceClient;

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

/// Both service clients on one channel.
#[derive(Clone)]
pub struct Clients {
    pub cases: CaseServiceClient<Channel>,
    pub consents: ConsentServiceClient<Channel>,
    pub audit: AuditServiceClient<Channel>,
}

impl Clients {
    pub fn new(channel: Channel) -> Clients {
        Clients {
            cases: CaseServiceClient::new(channel.clone()).max_encoding_message_size(64 << 20),
            consents: ConsentServiceClient::new(channel.clone()),
            audit: AuditServiceClient::new(channel),
        }
    }
}
