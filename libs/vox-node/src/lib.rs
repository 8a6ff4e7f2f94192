//! What every Vox node process shares: its credentials ([`NodeSecret`]), a voxbridge
//! client that authenticates with them ([`Bridge`]), host figures for heartbeats
//! ([`host`]), the heartbeat loop ([`heartbeat`]), gRPC channels over Unix sockets or
//! TCP ([`channel`]), and how servers take connections within limits ([`server`]).

pub mod channel;
pub mod heartbeat;
pub mod host;
pub mod reflection;
pub mod server;
pub mod tls;
pub mod tokens;

use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use vox_domain::{Error, Result};
use vox_proto::backend::v1 as pb;

/// A node's API secret as registration returned it: `vxn.<node id>.<random>`.
#[derive(Clone)]
pub struct NodeSecret {
    node_id: String,
    header: MetadataValue<tonic::metadata::Ascii>,
}

impl std::fmt::Debug for NodeSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeSecret({}, ..)", self.node_id)
    }
}

impl NodeSecret {
    /// Parses a secret; `field` names the setting it came from in errors.
    pub fn parse(field: &str, secret: &str) -> Result<Self> {
        let secret = secret.trim();
        let mut parts = secret.splitn(3, '.');
        let (Some("vxn"), Some(id), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(Error::invalid(
                field,
                "not a node API secret (vxn.<node id>.<secret>) as registration printed it",
            ));
        };
        if !vox_domain::ids::has_prefix(id, vox_domain::ids::NODE) || rest.len() != 32 {
            return Err(Error::invalid(
                field,
                "not a node API secret (vxn.<node id>.<secret>) as registration printed it",
            ));
        }
        let header = format!("Bearer {secret}")
            .parse()
            .map_err(|_| Error::invalid(field, "contains characters a header cannot carry"))?;
        Ok(NodeSecret { node_id: id.to_string(), header })
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// `Bearer <secret>`, the `authorization` value that presents it.
    pub fn authorization(&self) -> MetadataValue<tonic::metadata::Ascii> {
        self.header.clone()
    }

    /// True when `bearer` is this secret (compared in constant time): how a worker knows
    /// its own host.
    pub fn is(&self, bearer: &str) -> bool {
        use subtle::ConstantTimeEq;
        let mine = self.header.as_bytes().strip_prefix(b"Bearer ").unwrap_or_default();
        mine.ct_eq(bearer.trim().as_bytes()).into()
    }
}

/// Adds the node's credentials to every request.
#[derive(Clone, Debug)]
pub struct NodeAuth(NodeSecret);

impl NodeAuth {
    pub fn new(secret: NodeSecret) -> Self {
        NodeAuth(secret)
    }
}

impl tonic::service::Interceptor for NodeAuth {
    fn call(&mut self, mut req: tonic::Request<()>) -> std::result::Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert("authorization", self.0.header.clone());
        vox_telemetry::trace::inject(req.metadata_mut());
        Ok(req)
    }
}

type Authed = InterceptedService<Channel, NodeAuth>;

/// voxbridge, as a node talks to it.
#[derive(Clone, Debug)]
pub struct Bridge {
    channel: Channel,
    secret: NodeSecret,
}

impl Bridge {
    /// A lazily connecting client: a voxbridge that is down at start is retried by each call.
    pub fn new(url: &str, secret: NodeSecret) -> Result<Self> {
        let endpoint = channel::endpoint("bridge url", url)?
            .connect_timeout(std::time::Duration::from_secs(3))
            .timeout(std::time::Duration::from_secs(10));
        Ok(Bridge { channel: endpoint.connect_lazy(), secret })
    }

    pub fn node_id(&self) -> &str {
        self.secret.node_id()
    }

    /// The node's credentials, for a request made on its behalf.
    pub fn secret(&self) -> &NodeSecret {
        &self.secret
    }

    /// The channel without this node's credentials: for calls made with someone else's
    /// (e.g. `AuthService/Identify` of a caller's bearer).
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    fn authed(&self) -> Authed {
        InterceptedService::new(self.channel.clone(), NodeAuth(self.secret.clone()))
    }

    pub fn nodes(&self) -> pb::node_service_client::NodeServiceClient<Authed> {
        pb::node_service_client::NodeServiceClient::new(self.authed())
    }

    pub fn calls(&self) -> pb::call_service_client::CallServiceClient<Authed> {
        pb::call_service_client::CallServiceClient::new(self.authed())
    }

    pub fn campaigns(&self) -> pb::campaign_service_client::CampaignServiceClient<Authed> {
        pb::campaign_service_client::CampaignServiceClient::new(self.authed())
    }

    pub fn regions(&self) -> pb::region_service_client::RegionServiceClient<Authed> {
        pb::region_service_client::RegionServiceClient::new(self.authed())
    }

    pub fn dashboard(&self) -> pb::dashboard_service_client::DashboardServiceClient<Authed> {
        pb::dashboard_service_client::DashboardServiceClient::new(self.authed())
    }

    pub fn leadership(&self) -> pb::leadership_service_client::LeadershipServiceClient<Authed> {
        pb::leadership_service_client::LeadershipServiceClient::new(self.authed())
    }

    /// Cluster tokens: the public key, worker and stream tokens.
    pub fn cluster(&self) -> pb::cluster_service_client::ClusterServiceClient<Authed> {
        pb::cluster_service_client::ClusterServiceClient::new(self.authed())
    }

    /// The region's storage settings (fleet nodes).
    pub fn storage(&self) -> pb::storage_service_client::StorageServiceClient<Authed> {
        pb::storage_service_client::StorageServiceClient::new(self.authed())
    }
}

/// Resolves when the process is asked to stop (SIGTERM or Ctrl-C): every Vox server
/// drains on it.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

/// An id for this run of the process: a new one after every restart.
pub fn new_boot_id() -> String {
    format!("boot-{}", vox_domain::ids::random_token(12))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn secrets_parse_and_name_their_node() {
        let s =
            NodeSecret::parse("VOX_NODE_SECRET", "vxn.nd_0123456789abcdef.0123456789abcdefghjkmnpqrstvwxyz").unwrap();
        assert_eq!(s.node_id(), "nd_0123456789abcdef");
        assert!(!format!("{s:?}").contains("0123456789abcdefghjk"), "Debug never shows the secret");
        assert!(s.is("vxn.nd_0123456789abcdef.0123456789abcdefghjkmnpqrstvwxyz"));
        assert!(!s.is("vxn.nd_0123456789abcdef.0123456789abcdefghjkmnpqrstvwxyy"));
        let err = NodeSecret::parse("VOX_NODE_SECRET", "hunter2").unwrap_err();
        assert!(err.message.starts_with("VOX_NODE_SECRET:"), "{err}");
    }
}
