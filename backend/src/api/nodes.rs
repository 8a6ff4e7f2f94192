//! NodeService: registering nodes, their lifecycle, and heartbeats. A heartbeat's worker
//! slots are what gateways dial, so their endpoints are checked here before anything is
//! stored: a node cannot point gateways (and call audio) at arbitrary URLs.

use std::sync::Arc;

use tonic::Request;
use vox_domain::node::{self, DesiredState, LifecycleAction, NewNode, Node, NodeKind, NodeUpdate};
use vox_domain::user::Role;
use vox_domain::{Error, Result, ids, time};
use vox_proto::backend::v1 as pb;
use vox_proto::backend::v1::node_service_server::NodeService;
use vox_store::{ClusterEvent, NodeFilter};

use super::{RpcResult, limit, reply, required_id};
use crate::admission::AdmittedNode;
use crate::auth::Principal;
use crate::bridge::Bridge;
use crate::crypto;
use crate::metrics::label;

#[derive(Debug, Clone)]
pub struct Nodes(pub Arc<Bridge>);

/// The most worker slots a heartbeat may report: a voxcore host's own cap.
pub const MAX_SLOTS: usize = 1024;

/// The longest worker endpoint accepted.
const MAX_ENDPOINT: usize = 256;

/// Checks a worker endpoint: `unix:///absolute/path` or `http(s)://host:port` (an optional
/// trailing `/`, no user info, path or query). Empty means the slot has no listener yet.
pub fn check_worker_endpoint(field: &str, endpoint: &str) -> Result<()> {
    const EXPECTED: &str = "unix:///absolute/path or http(s)://host:port";
    if endpoint.is_empty() {
        return Ok(());
    }
    if endpoint.len() > MAX_ENDPOINT {
        return Err(Error::invalid(field, format!("at most {MAX_ENDPOINT} characters")));
    }
    if endpoint.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Error::invalid(field, format!("{EXPECTED}, without spaces or control characters")));
    }
    if let Some(path) = endpoint.strip_prefix("unix://") {
        if !path.starts_with('/') || path.len() < 2 || path.contains(['?', '#']) {
            return Err(Error::invalid(field, format!("{EXPECTED}; a Unix socket needs an absolute path")));
        }
        return Ok(());
    }
    let rest = endpoint.strip_prefix("http://").or_else(|| endpoint.strip_prefix("https://"));
    let Some(rest) = rest else {
        return Err(Error::invalid(field, format!("{EXPECTED}; no other scheme")));
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains('@') {
        return Err(Error::invalid(field, format!("{EXPECTED}; no user info")));
    }
    if authority.contains(['/', '?', '#']) {
        return Err(Error::invalid(field, format!("{EXPECTED}; no path or query")));
    }
    let Some((host, port)) = authority.rsplit_once(':') else {
        return Err(Error::invalid(field, format!("{EXPECTED}; the port is required")));
    };
    if !port.parse::<u16>().is_ok_and(|p| p > 0) {
        return Err(Error::invalid(field, format!("{EXPECTED}; port {port:?} is not 1-65535")));
    }
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')),
    };
    if !host_ok {
        return Err(Error::invalid(field, format!("{EXPECTED}; host {host:?} is not a host name or IP address")));
    }
    Ok(())
}

/// The worker slots of a heartbeat, checked before `presence_from_heartbeat` reads them.
fn check_worker_slots(workers: &[pb::WorkerSlot]) -> Result<()> {
    if workers.len() > MAX_SLOTS {
        return Err(Error::invalid(
            "workers",
            format!("{} slots; at most {MAX_SLOTS} per node (a voxcore host's own cap)", workers.len()),
        ));
    }
    for (i, w) in workers.iter().enumerate() {
        check_worker_endpoint(&format!("workers[{i}].endpoint"), &w.endpoint)?;
    }
    Ok(())
}

/// Nodes that may read the node list: gateways route calls to fleet workers, diallers
/// and the console show capacity.
const READERS: &[NodeKind] = &[NodeKind::Gateway, NodeKind::Dialler, NodeKind::Console];

impl Nodes {
    async fn load(&self, id: &str) -> Result<Node> {
        let id = required_id("id", id)?;
        self.0.stores.nodes.get_node(&id).await?.ok_or_else(|| Error::not_found("node", &id))
    }

    async fn to_proto(&self, n: &Node) -> Result<pb::Node> {
        let presence = self.0.stores.presence.get_presence(&n.id).await?;
        Ok(node::node_to_proto(n, presence.as_ref(), self.0.clock.now(), self.0.settings.node_staleness()))
    }

    async fn register(&self, req: Request<pb::RegisterNodeRequest>) -> Result<pb::RegisterNodeResponse> {
        let admin = self.0.auth.user(req.metadata(), Role::Admin).await?;
        let new = NewNode::try_from(req.into_inner())?;
        if let Some(region_id) = &new.region_id
            && self.0.stores.regions.get_region(region_id).await?.is_none()
        {
            return Err(Error::invalid("region_id", format!("no region {region_id:?}; create the region first")));
        }
        let now = self.0.clock.now();
        let id = ids::new_id(ids::NODE);
        let secret = crypto::new_node_secret(&id);
        let node = Node {
            id,
            kind: new.kind,
            region_id: new.region_id,
            name: new.name,
            endpoint: new.endpoint,
            sip_port: new.sip_port,
            desired_state: DesiredState::Active,
            secret_hash: crypto::hash_secret(&secret),
            shutdown_boot_id: None,
            created_at: now,
            updated_at: now,
        };
        let actor = format!("user:{}", admin.email);
        self.0
            .stores
            .nodes
            .insert_node(&node, &self.0.audit(&actor, "node.register", &node.id, node.kind.as_str()))
            .await?;
        tracing::info!(node_id = %node.id, kind = node.kind.as_str(), "node registered");
        self.0.publish(ClusterEvent::NodeChanged(node.id.clone()));
        Ok(pb::RegisterNodeResponse { node: Some(self.to_proto(&node).await?), api_secret: secret })
    }

    async fn update(&self, req: Request<pb::UpdateNodeRequest>) -> Result<pb::Node> {
        let admin = self.0.auth.user(req.metadata(), Role::Admin).await?;
        let update = NodeUpdate::from_proto(req.get_ref())?;
        let mut node = self.load(&req.get_ref().id).await?;
        if let Some(name) = update.name {
            node.name = name;
        }
        if let Some(endpoint) = update.endpoint {
            node.endpoint = endpoint;
        }
        if let Some(port) = update.sip_port {
            node.sip_port = port;
        }
        node.updated_at = self.0.clock.now();
        let actor = format!("user:{}", admin.email);
        self.0.stores.nodes.update_node(&node, &self.0.audit(&actor, "node.update", &node.id, "")).await?;
        self.0.publish(ClusterEvent::NodeChanged(node.id.clone()));
        self.to_proto(&node).await
    }

    async fn rotate(&self, req: Request<pb::RotateNodeSecretRequest>) -> Result<pb::RegisterNodeResponse> {
        let admin = self.0.auth.user(req.metadata(), Role::Admin).await?;
        let mut node = self.load(&req.get_ref().id).await?;
        let secret = crypto::new_node_secret(&node.id);
        node.secret_hash = crypto::hash_secret(&secret);
        node.updated_at = self.0.clock.now();
        let actor = format!("user:{}", admin.email);
        self.0.stores.nodes.update_node(&node, &self.0.audit(&actor, "node.secret.rotate", &node.id, "")).await?;
        // Drops the old secret from every voxbridge's verified secrets (crate::auth).
        self.0.publish(ClusterEvent::NodeChanged(node.id.clone()));
        Ok(pb::RegisterNodeResponse { node: Some(self.to_proto(&node).await?), api_secret: secret })
    }

    /// Maintenance, resume and shutdown are operator actions; disabling, which cannot be
    /// undone, is an admin's.
    async fn lifecycle(&self, req: Request<pb::SetNodeLifecycleRequest>) -> Result<pb::Node> {
        let user = self.0.auth.user(req.metadata(), Role::Operator).await?;
        let r = req.into_inner();
        let action = LifecycleAction::from_proto("action", r.action)?;
        let reason = r.reason.trim();
        if reason.is_empty() {
            return Err(Error::invalid("reason", "required: say why; it is kept in the audit log"));
        }
        if reason.len() > 500 {
            return Err(Error::invalid("reason", "at most 500 characters"));
        }
        if action == LifecycleAction::Disable && user.role < Role::Admin {
            return Err(Error::permission_denied(format!(
                "disabling a node is permanent (its secret stops working for good), so it needs the admin role; \
                 {} is {}: use maintenance or shutdown instead, or ask an admin",
                user.email,
                user.role.as_str()
            )));
        }
        let node = self.load(&r.node_id).await?;
        let to = action.apply(node.desired_state)?;
        let boot_id = match to {
            DesiredState::Shutdown => self.0.stores.presence.get_presence(&node.id).await?.map(|p| p.boot_id),
            _ => None,
        };
        let actor = format!("user:{}", user.email);
        let audit = self.0.audit(&actor, action.audit_action(), &node.id, reason);
        let updated = self.0.stores.nodes.set_desired_state(&node.id, node.desired_state, to, boot_id, &audit).await?;
        tracing::info!(node_id = %node.id, actor = %actor, to = to.as_str(), reason, "node lifecycle changed");
        self.0.publish(ClusterEvent::NodeChanged(node.id.clone()));
        self.to_proto(&updated).await
    }

    async fn heartbeat(&self, req: Request<pb::HeartbeatRequest>) -> Result<pb::HeartbeatResponse> {
        // Admission has checked this request's secret and read its node: taking that node
        // halves the store reads of the busiest RPC (10,000 nodes: 5,000 a second).
        let principal = match req.extensions().get::<AdmittedNode>() {
            Some(AdmittedNode(n)) => {
                vox_telemetry::trace::attribute("node_id", n.id.as_str());
                Ok(Principal::Node(n.clone()))
            }
            None => self.0.auth.principal(req.metadata()).await,
        };
        let hb = req.into_inner();
        let reject = |reason: &'static str| {
            self.0.metrics.heartbeat_rejections.get_or_create(&label("reason", reason)).inc();
        };
        let node = match principal {
            Ok(Principal::Node(n)) => n,
            Ok(Principal::User(_)) => {
                reject("not_a_node");
                return Err(Error::permission_denied(
                    "heartbeats come from nodes, authenticated with the node's API secret",
                ));
            }
            Err(e) => {
                reject("unauthenticated");
                return Err(e);
            }
        };
        if hb.node_id != node.id {
            reject("wrong_node");
            return Err(Error::permission_denied(format!(
                "node_id {:?} does not match this secret, which belongs to node {}; a node may only heartbeat as itself",
                hb.node_id, node.id
            )));
        }
        if node.desired_state == DesiredState::Disabled {
            reject("disabled");
            return Err(Error::permission_denied(format!("node {} is disabled; its heartbeats are refused", node.id)));
        }
        let now = self.0.clock.now();
        check_worker_slots(&hb.workers).inspect_err(|_| reject("invalid"))?;
        let presence = node::presence_from_heartbeat(&hb, now).inspect_err(|_| reject("invalid"))?;
        if node.kind != NodeKind::Fleet && !presence.workers.is_empty() {
            reject("invalid");
            return Err(Error::invalid("workers", "only fleet nodes have worker slots"));
        }
        let mut desired = node.desired_state;
        if desired == DesiredState::Shutdown && node.shutdown_boot_id.as_deref() != Some(presence.boot_id.as_str()) {
            // A new run of the process: the shutdown it was asked for has happened.
            let audit = self.0.audit(
                &format!("node:{}", node.id),
                "node.shutdown.completed",
                &node.id,
                "restarted with a new boot id",
            );
            match self
                .0
                .stores
                .nodes
                .set_desired_state(&node.id, DesiredState::Shutdown, DesiredState::Active, None, &audit)
                .await
            {
                Ok(n) => desired = n.desired_state,
                Err(e) if e.code == vox_domain::ErrorCode::FailedPrecondition => {}
                Err(e) => return Err(e),
            }
        }
        let previous = self.0.stores.presence.get_presence(&node.id).await?;
        self.0.stores.presence.put_presence(&presence).await?;
        let staleness = self.0.settings.node_staleness();
        let changed = previous.is_none_or(|p| {
            !p.is_fresh(now, staleness) || p.workers != presence.workers || p.boot_id != presence.boot_id
        });
        if changed || desired != node.desired_state {
            if desired == node.desired_state {
                // Only its presence changed: the node's verified secret stays valid.
                self.0.auth.expect_presence_change(&node.id);
            }
            self.0.publish(ClusterEvent::NodeChanged(node.id.clone()));
        }
        self.0.metrics.heartbeats.get_or_create(&label("kind", node.kind.as_str())).inc();
        Ok(pb::HeartbeatResponse {
            desired_state: desired.to_proto() as i32,
            heartbeat_interval_ms: self.0.settings.heartbeat_interval_ms,
            server_time: Some(time::to_proto(now)),
            region_id: node.region_id.clone().unwrap_or_default(),
        })
    }
}

#[tonic::async_trait]
impl NodeService for Nodes {
    async fn register_node(&self, req: Request<pb::RegisterNodeRequest>) -> RpcResult<pb::RegisterNodeResponse> {
        reply("RegisterNode", self.register(req).await)
    }

    async fn get_node(&self, req: Request<pb::GetNodeRequest>) -> RpcResult<pb::Node> {
        let r = async {
            self.0.auth.reader(req.metadata(), READERS).await?;
            let n = self.load(&req.get_ref().id).await?;
            self.to_proto(&n).await
        };
        reply("GetNode", r.await)
    }

    async fn list_nodes(&self, req: Request<pb::ListNodesRequest>) -> RpcResult<pb::ListNodesResponse> {
        let r = async {
            self.0.auth.reader(req.metadata(), READERS).await?;
            let q = req.get_ref();
            let filter = NodeFilter {
                region_id: (!q.region_id.trim().is_empty()).then(|| q.region_id.trim().to_string()),
                kind: if q.kind == 0 { None } else { Some(NodeKind::from_proto("kind", q.kind)?) },
            };
            let nodes = self.0.stores.nodes.list_nodes(&filter).await?;
            let mut out = Vec::with_capacity(nodes.len());
            for n in &nodes {
                out.push(self.to_proto(n).await?);
            }
            Ok(pb::ListNodesResponse { nodes: out })
        };
        reply("ListNodes", r.await)
    }

    async fn update_node(&self, req: Request<pb::UpdateNodeRequest>) -> RpcResult<pb::Node> {
        reply("UpdateNode", self.update(req).await)
    }

    async fn rotate_node_secret(
        &self,
        req: Request<pb::RotateNodeSecretRequest>,
    ) -> RpcResult<pb::RegisterNodeResponse> {
        reply("RotateNodeSecret", self.rotate(req).await)
    }

    async fn delete_node(&self, req: Request<pb::DeleteNodeRequest>) -> RpcResult<pb::DeleteNodeResponse> {
        let r = async {
            let admin = self.0.auth.user(req.metadata(), Role::Admin).await?;
            let id = required_id("id", &req.get_ref().id)?;
            let actor = format!("user:{}", admin.email);
            self.0.stores.nodes.delete_node(&id, &self.0.audit(&actor, "node.delete", &id, "")).await?;
            self.0.stores.presence.remove_presence(&id).await?;
            self.0.publish(ClusterEvent::NodeChanged(id));
            Ok(pb::DeleteNodeResponse {})
        };
        reply("DeleteNode", r.await)
    }

    async fn set_node_lifecycle(&self, req: Request<pb::SetNodeLifecycleRequest>) -> RpcResult<pb::Node> {
        reply("SetNodeLifecycle", self.lifecycle(req).await)
    }

    async fn list_audit_events(
        &self,
        req: Request<pb::ListAuditEventsRequest>,
    ) -> RpcResult<pb::ListAuditEventsResponse> {
        let r = async {
            self.0.auth.user(req.metadata(), Role::Viewer).await?;
            let q = req.get_ref();
            let n = limit("limit", q.limit, 100, 1000)?;
            let target = (!q.target_id.trim().is_empty()).then(|| q.target_id.trim().to_string());
            let events = self.0.stores.audit.list_audit(target.as_deref(), n).await?;
            Ok(pb::ListAuditEventsResponse { events: events.iter().map(pb::AuditEvent::from).collect() })
        };
        reply("ListAuditEvents", r.await)
    }

    async fn heartbeat(&self, req: Request<pb::HeartbeatRequest>) -> RpcResult<pb::HeartbeatResponse> {
        reply("Heartbeat", Nodes::heartbeat(self, req).await)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests stop on failure")]
    use super::*;

    #[test]
    fn worker_endpoints_are_unix_sockets_or_host_and_port() {
        for ok in [
            "",
            "unix:///run/vox/voxcore_1.sock",
            "http://10.0.0.5:7101",
            "https://fleet-1.example.com:7101/",
            "http://[::1]:7101",
        ] {
            assert!(check_worker_endpoint("e", ok).is_ok(), "{ok}");
        }
        for bad in [
            "ftp://x",
            "http://user:pw@h:1",
            "http://h",
            "http://h:0",
            "http://h:99999",
            "http://h:1/path",
            "http://h:1/?q",
            "http://h:1?q",
            "http://:1",
            "http://h h:1",
            "unix://relative.sock",
            "unix:///",
            "10.0.0.5:5002",
            "javascript:alert(1)",
        ] {
            let e = check_worker_endpoint("workers[3].endpoint", bad).unwrap_err();
            assert!(e.message.starts_with("workers[3].endpoint:"), "{bad}: {}", e.message);
        }
        let long = format!("http://{}:1", "h".repeat(250));
        assert!(check_worker_endpoint("e", &long).is_err());
    }
}
