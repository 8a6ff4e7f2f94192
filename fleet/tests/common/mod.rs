//! A small cluster for fleet tests: voxbridge with a region, a registered fleet node
//! (whose secret the workers run with) and a gateway node (which asks voxbridge for the
//! worker tokens gateways show to workers), plus workers started as real processes.
#![allow(dead_code, clippy::unwrap_used, reason = "shared by several test binaries; tests stop on failure")]

use std::path::Path;
use std::time::Duration;

use tonic::Request;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use vox_proto::backend::v1 as bpb;
use vox_proto::fleet::v1::worker_service_client::WorkerServiceClient;
use vox_testkit::{ServerProcess, control};

/// Polls `f` every 100 ms for up to 15 s.
pub async fn until<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..150 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// voxbridge and the nodes a fleet test needs.
pub struct Cluster {
    pub bridge: ServerProcess,
    pub channel: Channel,
    pub admin: String,
    pub region: String,
    pub fleet_id: String,
    /// The fleet node's secret: what its host and workers run with.
    pub fleet_secret: String,
    pub gateway_id: String,
    pub gateway_secret: String,
}

impl Cluster {
    /// voxbridge (heartbeats every 300 ms) with a region, a fleet node and a gateway node;
    /// logs under `dir`.
    pub async fn start(dir: &Path) -> Cluster {
        let args: Vec<String> = [
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &dir.join("bridge").display().to_string(),
            "--heartbeat-interval-ms",
            "300",
        ]
        .map(String::from)
        .to_vec();
        let bridge = control::start_bridge("voxbridge", &args, dir).await;
        let (channel, admin) = control::admin_session(&bridge.url()).await;
        let region = control::create_region(&channel, &admin, "us-east-1", None).await;
        let fleet = control::register_node(&channel, &admin, &region, bpb::NodeKind::Fleet).await;
        let gateway = control::register_node(&channel, &admin, &region, bpb::NodeKind::Gateway).await;
        Cluster {
            bridge,
            channel,
            admin,
            region,
            fleet_id: fleet.node.unwrap().id,
            fleet_secret: fleet.api_secret,
            gateway_id: gateway.node.unwrap().id,
            gateway_secret: gateway.api_secret,
        }
    }

    /// Registers one more fleet node; returns (node id, secret).
    pub async fn another_fleet_node(&self) -> (String, String) {
        let n = control::register_node(&self.channel, &self.admin, &self.region, bpb::NodeKind::Fleet).await;
        (n.node.unwrap().id, n.api_secret)
    }

    /// A worker token for the gateway node, as voxgate gets one.
    pub async fn worker_token(&self) -> String {
        bpb::cluster_service_client::ClusterServiceClient::new(self.channel.clone())
            .issue_worker_token(control::authed(&self.gateway_secret, bpb::IssueWorkerTokenRequest {}))
            .await
            .unwrap()
            .into_inner()
            .token
    }

    /// A fleet node as voxbridge sees it.
    pub async fn node(&self, id: &str) -> bpb::Node {
        bpb::node_service_client::NodeServiceClient::new(self.channel.clone())
            .get_node(control::authed(&self.admin, bpb::GetNodeRequest { id: id.into() }))
            .await
            .unwrap()
            .into_inner()
    }
}

/// Puts a fixed bearer on every request (a gateway's token, a host's secret, a forgery).
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Bearer {
    pub fn new(token: &str) -> Self {
        Bearer(Some(format!("Bearer {token}").parse().unwrap()))
    }

    pub fn none() -> Self {
        Bearer(None)
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

pub type Client = WorkerServiceClient<InterceptedService<Channel, Bearer>>;

/// A client of the worker at `url` (unix://, http:// or https://) sending `bearer`.
pub fn client(url: &str, bearer: Bearer) -> Client {
    WorkerServiceClient::new(InterceptedService::new(vox_node::channel::connect_lazy(url).unwrap(), bearer))
}

/// `voxcore worker` with `args`, waited on until it listens; logs under `dir`.
pub async fn start_worker(name: &str, args: &[String], envs: &[(&str, String)], dir: &Path) -> ServerProcess {
    ServerProcess::start_listening(name, Path::new(env!("CARGO_BIN_EXE_voxcore")), args, envs, dir).await.unwrap()
}

/// A call id of the id alphabet, as voxbridge makes them.
pub fn new_call() -> String {
    vox_domain::ids::new_id(vox_domain::ids::CALL)
}
