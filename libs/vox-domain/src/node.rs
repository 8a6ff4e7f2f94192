//! Nodes, their heartbeats (presence) and their lifecycle.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use vox_proto::backend::v1 as pb;
use vox_proto::common::v1 as common;

use crate::{Error, Result, region, time};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    /// A fleet host: the seeds' "backend node".
    Fleet,
    /// A gateway: the seeds' "proxy node".
    Gateway,
    Console,
    Background,
    Dialler,
}

impl NodeKind {
    /// One per cluster.
    pub fn is_singleton(self) -> bool {
        matches!(self, NodeKind::Console | NodeKind::Background)
    }

    /// Lives in a region (fleet hosts and gateways do; singletons and diallers don't).
    pub fn is_regional(self) -> bool {
        matches!(self, NodeKind::Fleet | NodeKind::Gateway)
    }

    pub fn default_sip_port(self) -> u32 {
        match self {
            NodeKind::Gateway => 5060,
            NodeKind::Fleet => 5080,
            _ => 0,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::Fleet => "fleet",
            NodeKind::Gateway => "gateway",
            NodeKind::Console => "console",
            NodeKind::Background => "background",
            NodeKind::Dialler => "dialler",
        }
    }

    pub fn from_proto(field: &str, v: i32) -> Result<Self> {
        match pb::NodeKind::try_from(v) {
            Ok(pb::NodeKind::Fleet) => Ok(NodeKind::Fleet),
            Ok(pb::NodeKind::Gateway) => Ok(NodeKind::Gateway),
            Ok(pb::NodeKind::Console) => Ok(NodeKind::Console),
            Ok(pb::NodeKind::Background) => Ok(NodeKind::Background),
            Ok(pb::NodeKind::Dialler) => Ok(NodeKind::Dialler),
            _ => Err(Error::invalid(
                field,
                "one of NODE_KIND_FLEET, NODE_KIND_GATEWAY, NODE_KIND_CONSOLE, NODE_KIND_BACKGROUND, NODE_KIND_DIALLER",
            )),
        }
    }

    pub fn to_proto(self) -> pb::NodeKind {
        match self {
            NodeKind::Fleet => pb::NodeKind::Fleet,
            NodeKind::Gateway => pb::NodeKind::Gateway,
            NodeKind::Console => pb::NodeKind::Console,
            NodeKind::Background => pb::NodeKind::Background,
            NodeKind::Dialler => pb::NodeKind::Dialler,
        }
    }
}

/// What the control plane wants a node to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DesiredState {
    Active,
    Maintenance,
    Shutdown,
    Disabled,
}

impl DesiredState {
    pub fn to_proto(self) -> pb::DesiredState {
        match self {
            DesiredState::Active => pb::DesiredState::Active,
            DesiredState::Maintenance => pb::DesiredState::Maintenance,
            DesiredState::Shutdown => pb::DesiredState::Shutdown,
            DesiredState::Disabled => pb::DesiredState::Disabled,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DesiredState::Active => "active",
            DesiredState::Maintenance => "maintenance",
            DesiredState::Shutdown => "shutdown",
            DesiredState::Disabled => "disabled",
        }
    }
}

/// An operator's lifecycle control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleAction {
    Maintenance,
    Resume,
    Disable,
    Shutdown,
}

impl LifecycleAction {
    pub fn from_proto(field: &str, v: i32) -> Result<Self> {
        match pb::LifecycleAction::try_from(v) {
            Ok(pb::LifecycleAction::Maintenance) => Ok(LifecycleAction::Maintenance),
            Ok(pb::LifecycleAction::Resume) => Ok(LifecycleAction::Resume),
            Ok(pb::LifecycleAction::Disable) => Ok(LifecycleAction::Disable),
            Ok(pb::LifecycleAction::Shutdown) => Ok(LifecycleAction::Shutdown),
            _ => Err(Error::invalid(
                field,
                "one of LIFECYCLE_ACTION_MAINTENANCE, LIFECYCLE_ACTION_RESUME, LIFECYCLE_ACTION_DISABLE, LIFECYCLE_ACTION_SHUTDOWN",
            )),
        }
    }

    /// The audit action name, e.g. `node.maintenance`.
    pub fn audit_action(self) -> &'static str {
        match self {
            LifecycleAction::Maintenance => "node.maintenance",
            LifecycleAction::Resume => "node.resume",
            LifecycleAction::Disable => "node.disable",
            LifecycleAction::Shutdown => "node.shutdown",
        }
    }

    /// The state this action leads to from `current`, or why it cannot be taken.
    /// Disabled is final; everything else may be resumed.
    pub fn apply(self, current: DesiredState) -> Result<DesiredState> {
        if current == DesiredState::Disabled {
            return Err(Error::precondition("the node is disabled, which is permanent; register a new node instead"));
        }
        Ok(match self {
            LifecycleAction::Maintenance => DesiredState::Maintenance,
            LifecycleAction::Resume => DesiredState::Active,
            LifecycleAction::Disable => DesiredState::Disabled,
            LifecycleAction::Shutdown => DesiredState::Shutdown,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    Idle,
    Reserved,
    InCall,
    Draining,
}

impl WorkerState {
    pub fn from_proto(field: &str, v: i32) -> Result<Self> {
        match common::WorkerState::try_from(v) {
            Ok(common::WorkerState::Idle) => Ok(WorkerState::Idle),
            Ok(common::WorkerState::Reserved) => Ok(WorkerState::Reserved),
            Ok(common::WorkerState::InCall) => Ok(WorkerState::InCall),
            Ok(common::WorkerState::Draining) => Ok(WorkerState::Draining),
            _ => Err(Error::invalid(
                field,
                "one of WORKER_STATE_IDLE, WORKER_STATE_RESERVED, WORKER_STATE_IN_CALL, WORKER_STATE_DRAINING",
            )),
        }
    }

    pub fn to_proto(self) -> common::WorkerState {
        match self {
            WorkerState::Idle => common::WorkerState::Idle,
            WorkerState::Reserved => common::WorkerState::Reserved,
            WorkerState::InCall => common::WorkerState::InCall,
            WorkerState::Draining => common::WorkerState::Draining,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerSlot {
    pub index: u32,
    pub state: WorkerState,
    pub call_id: String,
    pub endpoint: String,
}

/// A registered node, as stored durably.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub id: String,
    pub kind: NodeKind,
    pub region_id: Option<String>,
    pub name: String,
    pub endpoint: String,
    pub sip_port: u32,
    pub desired_state: DesiredState,
    /// Hex SHA-256 of the node's API secret. The secret itself is never stored.
    pub secret_hash: String,
    /// The boot id heartbeating when shutdown was asked for; a different one means the
    /// node restarted and shutdown is complete.
    pub shutdown_boot_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The latest heartbeat of a node: ephemeral, kept by the presence store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Presence {
    pub node_id: String,
    pub boot_id: String,
    pub version: String,
    pub cpu_percent: f64,
    pub memory_used_bytes: u64,
    pub memory_total_bytes: u64,
    pub workers: Vec<WorkerSlot>,
    pub at: DateTime<Utc>,
}

impl Presence {
    /// Online: the heartbeat is fresher than `staleness`.
    pub fn is_fresh(&self, now: DateTime<Utc>, staleness: Duration) -> bool {
        now - self.at < staleness
    }
}

/// Validated registration.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNode {
    pub kind: NodeKind,
    pub region_id: Option<String>,
    pub name: String,
    pub endpoint: String,
    pub sip_port: u32,
}

pub fn validate_sip_port(field: &str, port: u32) -> Result<u32> {
    if (1..=65535).contains(&port) {
        Ok(port)
    } else {
        Err(Error::invalid(field, format!("{port} is not a port; use 1-65535")))
    }
}

fn validate_node_name(field: &str, name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(Error::invalid(field, "required, at most 100 characters"));
    }
    Ok(name.to_string())
}

impl TryFrom<pb::RegisterNodeRequest> for NewNode {
    type Error = Error;

    fn try_from(r: pb::RegisterNodeRequest) -> Result<Self> {
        let kind = NodeKind::from_proto("kind", r.kind)?;
        let region_id = if kind.is_regional() {
            if r.region_id.trim().is_empty() {
                return Err(Error::invalid("region_id", format!("required for a {} node", kind.as_str())));
            }
            Some(r.region_id.trim().to_string())
        } else if r.region_id.trim().is_empty() {
            None
        } else {
            Some(r.region_id.trim().to_string())
        };
        let name =
            if r.name.trim().is_empty() { kind.as_str().to_string() } else { validate_node_name("name", &r.name)? };
        let endpoint = region::validate_http_url("endpoint", &r.endpoint)?;
        let sip_port = match (r.sip_port, kind.default_sip_port()) {
            (0, 0) => 0,
            (0, default) => default,
            (port, _) => validate_sip_port("sip_port", port)?,
        };
        Ok(NewNode { kind, region_id, name, endpoint, sip_port })
    }
}

/// Node fields an admin may change after registration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodeUpdate {
    pub name: Option<String>,
    pub endpoint: Option<String>,
    pub sip_port: Option<u32>,
}

impl NodeUpdate {
    pub fn from_proto(r: &pb::UpdateNodeRequest) -> Result<Self> {
        Ok(NodeUpdate {
            name: r.name.as_deref().map(|n| validate_node_name("name", n)).transpose()?,
            endpoint: r.endpoint.as_deref().map(|e| region::validate_http_url("endpoint", e)).transpose()?,
            sip_port: r.sip_port.map(|p| validate_sip_port("sip_port", p)).transpose()?,
        })
    }
}

/// Validates a heartbeat into a presence record stamped with the server's time.
pub fn presence_from_heartbeat(hb: &pb::HeartbeatRequest, at: DateTime<Utc>) -> Result<Presence> {
    if hb.boot_id.trim().is_empty() || hb.boot_id.len() > 64 {
        return Err(Error::invalid("boot_id", "required: an id for this run of the process, at most 64 characters"));
    }
    if !(0.0..=100.0 * 1024.0).contains(&hb.cpu_percent) || hb.cpu_percent.is_nan() {
        return Err(Error::invalid("cpu_percent", "a percentage of one core times the core count, not negative"));
    }
    if hb.memory_total_bytes > 0 && hb.memory_used_bytes > hb.memory_total_bytes {
        return Err(Error::invalid("memory_used_bytes", "must not exceed memory_total_bytes"));
    }
    if hb.workers.len() > 4096 {
        return Err(Error::invalid("workers", "at most 4096 slots per node"));
    }
    let mut workers = Vec::with_capacity(hb.workers.len());
    let mut seen = std::collections::HashSet::new();
    for (i, w) in hb.workers.iter().enumerate() {
        let field = format!("workers[{i}]");
        if w.index == 0 || !seen.insert(w.index) {
            return Err(Error::invalid(&format!("{field}.index"), "1-based and unique per node"));
        }
        workers.push(WorkerSlot {
            index: w.index,
            state: WorkerState::from_proto(&format!("{field}.state"), w.state)?,
            call_id: w.call_id.clone(),
            endpoint: w.endpoint.clone(),
        });
    }
    Ok(Presence {
        node_id: hb.node_id.clone(),
        boot_id: hb.boot_id.clone(),
        version: hb.version.chars().take(64).collect(),
        cpu_percent: hb.cpu_percent,
        memory_used_bytes: hb.memory_used_bytes,
        memory_total_bytes: hb.memory_total_bytes,
        workers,
        at,
    })
}

/// The wire form of a node with its presence folded in.
pub fn node_to_proto(node: &Node, presence: Option<&Presence>, now: DateTime<Utc>, staleness: Duration) -> pb::Node {
    let online = node.desired_state != DesiredState::Disabled && presence.is_some_and(|p| p.is_fresh(now, staleness));
    pb::Node {
        id: node.id.clone(),
        kind: node.kind.to_proto() as i32,
        region_id: node.region_id.clone().unwrap_or_default(),
        name: node.name.clone(),
        endpoint: node.endpoint.clone(),
        sip_port: node.sip_port,
        desired_state: node.desired_state.to_proto() as i32,
        online,
        last_heartbeat_at: presence.map(|p| time::to_proto(p.at)),
        version: presence.map(|p| p.version.clone()).unwrap_or_default(),
        cpu_percent: presence.map_or(0.0, |p| p.cpu_percent),
        memory_used_bytes: presence.map_or(0, |p| p.memory_used_bytes),
        memory_total_bytes: presence.map_or(0, |p| p.memory_total_bytes),
        workers: presence
            .map(|p| {
                p.workers
                    .iter()
                    .map(|w| pb::WorkerSlot {
                        index: w.index,
                        state: w.state.to_proto() as i32,
                        call_id: w.call_id.clone(),
                        endpoint: w.endpoint.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        created_at: Some(time::to_proto(node.created_at)),
        boot_id: presence.map(|p| p.boot_id.clone()).unwrap_or_default(),
    }
}

/// One line of the audit trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub id: String,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target_id: String,
    pub reason: String,
}

impl From<&AuditEvent> for pb::AuditEvent {
    fn from(a: &AuditEvent) -> Self {
        pb::AuditEvent {
            id: a.id.clone(),
            at: Some(time::to_proto(a.at)),
            actor: a.actor.clone(),
            action: a.action.clone(),
            target_id: a.target_id.clone(),
            reason: a.reason.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_defaults_sip_ports_by_kind() {
        let req = |kind: pb::NodeKind| pb::RegisterNodeRequest {
            kind: kind as i32,
            region_id: "rg_x".into(),
            name: String::new(),
            endpoint: "http://10.0.0.5:5002".into(),
            sip_port: 0,
        };
        assert_eq!(NewNode::try_from(req(pb::NodeKind::Gateway)).unwrap().sip_port, 5060);
        assert_eq!(NewNode::try_from(req(pb::NodeKind::Fleet)).unwrap().sip_port, 5080);
        let err = NewNode::try_from(pb::RegisterNodeRequest { region_id: String::new(), ..req(pb::NodeKind::Fleet) })
            .unwrap_err();
        assert!(err.message.starts_with("region_id:"), "{err}");
        let err = NewNode::try_from(pb::RegisterNodeRequest { kind: 0, ..req(pb::NodeKind::Fleet) }).unwrap_err();
        assert!(err.message.starts_with("kind:"), "{err}");
    }

    #[test]
    fn disabled_is_final() {
        assert_eq!(LifecycleAction::Maintenance.apply(DesiredState::Active).unwrap(), DesiredState::Maintenance);
        assert_eq!(LifecycleAction::Resume.apply(DesiredState::Maintenance).unwrap(), DesiredState::Active);
        assert!(LifecycleAction::Resume.apply(DesiredState::Disabled).is_err());
    }
}
