//! Nodes, their lifecycle and the audit log. A node's API secret appears in exactly two
//! responses, registration and rotation, and nowhere else.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vox_proto::backend::v1 as pb;
use vox_proto::common::v1 as common;

use super::{convert_all, known, non_empty, opt_time, time, wire_enum};
use crate::error::{ApiError, ApiResult};

wire_enum! {
    pub enum NodeKind: pb::NodeKind {
        /// A fleet host of voxcore workers (SIP port default 5080).
        Fleet = Fleet,
        /// A voxgate edge (SIP port default 5060).
        Gateway = Gateway,
        /// Singleton: the console server.
        Console = Console,
        /// Singleton: the background processor.
        Background = Background,
        /// An outbound dialler.
        Dialler = Dialler,
    }
}

wire_enum! {
    /// What the control plane wants the node to do; carried in every heartbeat reply.
    pub enum DesiredState: pb::DesiredState {
        Active = Active,
        /// Drain: finish current calls, take no new ones.
        Maintenance = Maintenance,
        /// Drain, then exit; the service manager restarts it.
        Shutdown = Shutdown,
        /// Permanently offline.
        Disabled = Disabled,
    }
}

wire_enum! {
    pub enum LifecycleAction: pb::LifecycleAction {
        Maintenance = Maintenance,
        Resume = Resume,
        Disable = Disable,
        Shutdown = Shutdown,
    }
}

wire_enum! {
    pub enum WorkerState: common::WorkerState {
        Idle = Idle,
        Reserved = Reserved,
        InCall = InCall,
        Draining = Draining,
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WorkerSlot {
    /// 1-based worker number on its host.
    pub index: u32,
    pub state: WorkerState,
    /// The call the slot holds, when reserved or in call.
    pub call_id: Option<String>,
    pub endpoint: String,
}

impl TryFrom<pb::WorkerSlot> for WorkerSlot {
    type Error = ApiError;

    fn try_from(w: pb::WorkerSlot) -> ApiResult<Self> {
        Ok(WorkerSlot {
            index: w.index,
            state: known(WorkerState::from_proto(w.state), "worker state")?,
            call_id: non_empty(w.call_id),
            endpoint: w.endpoint,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Node {
    pub id: String,
    pub kind: NodeKind,
    /// `null` for singletons and diallers.
    pub region_id: Option<String>,
    pub name: String,
    pub endpoint: String,
    pub sip_port: u32,
    pub desired_state: DesiredState,
    /// True while the last heartbeat is fresh.
    pub online: bool,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    pub version: String,
    pub cpu_percent: f64,
    pub memory_used_bytes: u64,
    pub memory_total_bytes: u64,
    pub workers: Vec<WorkerSlot>,
    pub created_at: DateTime<Utc>,
    /// One run of the node's process; a new one after a shutdown means it restarted.
    pub boot_id: Option<String>,
}

impl TryFrom<pb::Node> for Node {
    type Error = ApiError;

    fn try_from(n: pb::Node) -> ApiResult<Self> {
        Ok(Node {
            kind: known(NodeKind::from_proto(n.kind), "node kind")?,
            desired_state: known(DesiredState::from_proto(n.desired_state), "desired state")?,
            last_heartbeat_at: opt_time(n.last_heartbeat_at, "last_heartbeat_at")?,
            created_at: time(n.created_at, "node created_at")?,
            workers: convert_all(n.workers)?,
            region_id: non_empty(n.region_id),
            boot_id: non_empty(n.boot_id),
            id: n.id,
            name: n.name,
            endpoint: n.endpoint,
            sip_port: n.sip_port,
            online: n.online,
            version: n.version,
            cpu_percent: n.cpu_percent,
            memory_used_bytes: n.memory_used_bytes,
            memory_total_bytes: n.memory_total_bytes,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NodeList {
    pub nodes: Vec<Node>,
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NodeFilter {
    /// Only nodes of this region.
    pub region_id: Option<String>,
    /// Only nodes of this kind.
    pub kind: Option<NodeKind>,
}

impl From<NodeFilter> for pb::ListNodesRequest {
    fn from(f: NodeFilter) -> Self {
        pb::ListNodesRequest { region_id: f.region_id.unwrap_or_default(), kind: f.kind.map_or(0, NodeKind::to_proto) }
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct RegisterNodeRequest {
    pub kind: NodeKind,
    /// Required for fleet hosts and gateways; omit for singletons and diallers.
    #[serde(default)]
    pub region_id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// Where the service is reachable, e.g. http://10.0.0.5:5002.
    pub endpoint: String,
    /// Omit for the kind's default (gateway 5060, fleet 5080).
    #[serde(default)]
    pub sip_port: Option<u32>,
}

impl From<RegisterNodeRequest> for pb::RegisterNodeRequest {
    fn from(r: RegisterNodeRequest) -> Self {
        pb::RegisterNodeRequest {
            kind: r.kind.to_proto(),
            region_id: r.region_id.unwrap_or_default(),
            name: r.name.unwrap_or_default(),
            endpoint: r.endpoint,
            sip_port: r.sip_port.unwrap_or(0),
        }
    }
}

/// A node with its API secret, shown this once: put it in the node's config as
/// VOX_NODE_SECRET. Only its hash is stored.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct NodeWithSecret {
    pub node: Node,
    pub api_secret: String,
}

impl std::fmt::Debug for NodeWithSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeWithSecret").field("node", &self.node).finish_non_exhaustive()
    }
}

impl TryFrom<pb::RegisterNodeResponse> for NodeWithSecret {
    type Error = ApiError;

    fn try_from(r: pb::RegisterNodeResponse) -> ApiResult<Self> {
        let node = r.node.ok_or_else(|| ApiError::internal("voxbridge sent a registration without its node"))?;
        Ok(NodeWithSecret { node: Node::try_from(node)?, api_secret: r.api_secret })
    }
}

/// Only the fields present change.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(default)]
pub struct UpdateNodeRequest {
    pub name: Option<String>,
    pub endpoint: Option<String>,
    pub sip_port: Option<u32>,
}

impl UpdateNodeRequest {
    pub fn into_proto(self, id: String) -> pb::UpdateNodeRequest {
        pb::UpdateNodeRequest { id, name: self.name, endpoint: self.endpoint, sip_port: self.sip_port }
    }
}

/// A lifecycle change, written to the audit log with who and why.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct LifecycleRequest {
    pub action: LifecycleAction,
    /// Why: kept in the audit log. Required.
    pub reason: String,
}

impl LifecycleRequest {
    pub fn into_proto(self, node_id: String) -> pb::SetNodeLifecycleRequest {
        pb::SetNodeLifecycleRequest { node_id, action: self.action.to_proto(), reason: self.reason }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditEvent {
    pub id: String,
    pub at: DateTime<Utc>,
    /// Who: "user:<email>", "node:<id>" or "system".
    pub actor: String,
    /// What, e.g. "node.maintenance", "node.register", "region.storage.set".
    pub action: String,
    /// The object acted on, e.g. a node or region id.
    pub target_id: String,
    pub reason: String,
}

impl TryFrom<pb::AuditEvent> for AuditEvent {
    type Error = ApiError;

    fn try_from(a: pb::AuditEvent) -> ApiResult<Self> {
        Ok(AuditEvent {
            at: time(a.at, "audit event at")?,
            id: a.id,
            actor: a.actor,
            action: a.action,
            target_id: a.target_id,
            reason: a.reason,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditList {
    /// Newest first.
    pub events: Vec<AuditEvent>,
}

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditFilter {
    /// Only events about this object.
    pub target_id: Option<String>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<u32>,
}

impl From<AuditFilter> for pb::ListAuditEventsRequest {
    fn from(f: AuditFilter) -> Self {
        pb::ListAuditEventsRequest { target_id: f.target_id.unwrap_or_default(), limit: f.limit.unwrap_or(0) }
    }
}
