//! The heartbeat loop every node runs: every interval (2 s unless voxbridge asks
//! otherwise) it reports its figures and slots, and hands the desired state in the reply
//! to the node. A voxbridge that is down is retried; the node keeps running as it was.

use std::future::Future;
use std::time::Duration;

use vox_proto::backend::v1 as pb;

use crate::Bridge;
use crate::host::HostSampler;

/// What a node tells the loop each beat, and what it does with the reply.
pub trait HeartbeatSource: Send + Sync {
    /// The node's worker slots now (empty for non-fleet nodes).
    fn slots(&self) -> impl Future<Output = Vec<pb::WorkerSlot>> + Send;
    /// Called with every desired state voxbridge replies with.
    fn desired(&self, state: pb::DesiredState) -> impl Future<Output = ()> + Send;
}

/// Runs until `stop` flips to true.
pub async fn run(
    bridge: Bridge,
    boot_id: String,
    version: &'static str,
    source: std::sync::Arc<impl HeartbeatSource>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let sampler = HostSampler::default();
    let mut interval = Duration::from_secs(2);
    let mut failing = false;
    loop {
        let figures = sampler.sample();
        let req = pb::HeartbeatRequest {
            node_id: bridge.node_id().to_string(),
            boot_id: boot_id.clone(),
            version: version.to_string(),
            cpu_percent: figures.cpu_percent,
            memory_used_bytes: figures.memory_used_bytes,
            memory_total_bytes: figures.memory_total_bytes,
            workers: source.slots().await,
        };
        match bridge.nodes().heartbeat(req).await {
            Ok(reply) => {
                let reply = reply.into_inner();
                if failing {
                    tracing::info!(node_id = bridge.node_id(), "heartbeats accepted again");
                    failing = false;
                }
                if reply.heartbeat_interval_ms >= 100 {
                    interval = Duration::from_millis(u64::from(reply.heartbeat_interval_ms));
                }
                source.desired(reply.desired_state()).await;
            }
            Err(status) => {
                if !failing {
                    tracing::warn!(node_id = bridge.node_id(), code = ?status.code(), error = status.message(), "heartbeat failed; retrying");
                    failing = true;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// The source of a node with no worker slots that takes no orders (a dialler, the
/// console node): its heartbeats carry version and host figures only.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSlots;

impl HeartbeatSource for NoSlots {
    async fn slots(&self) -> Vec<pb::WorkerSlot> {
        Vec::new()
    }

    async fn desired(&self, _state: pb::DesiredState) {}
}
