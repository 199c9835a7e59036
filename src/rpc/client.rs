//! The node's four services as clients on one channel, for the demo, the
//! tests and tools (the channel itself comes from `net::client::connect`).

use tonic::transport::Channel;

use crate::rpc::proto::v1::audit_service_client::AuditServiceClient;
use crate::rpc::proto::v1::case_service_client::CaseServiceClient;
use crate::rpc::proto::v1::consent_service_client::ConsentServiceClient;
use crate::rpc::proto::v1::statistics_service_client::StatisticsServiceClient;

/// The case, consent, audit and statistics service clients on one channel.
#[derive(Clone)]
pub struct Clients {
    pub cases: CaseServiceClient<Channel>,
    pub consents: ConsentServiceClient<Channel>,
    pub audit: AuditServiceClient<Channel>,
    pub stats: StatisticsServiceClient<Channel>,
    channel: Channel,
}

impl Clients {
    pub fn new(channel: Channel) -> Clients {
        Clients {
            cases: CaseServiceClient::new(channel.clone()).max_encoding_message_size(64 << 20),
            consents: ConsentServiceClient::new(channel.clone()),
            audit: AuditServiceClient::new(channel.clone()),
            stats: StatisticsServiceClient::new(channel.clone()),
            channel,
        }
    }

    /// The channel itself, for other services on the same connection
    /// (`grpc.health.v1`, reflection).
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }
}
