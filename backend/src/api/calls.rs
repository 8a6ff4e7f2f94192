//! CallService: reading calls, inbound calls from gateways, the dialler's leases, and
//! every move of a call. A node's authority is tied to the call it moves: a fleet node
//! moves only calls on its own slots, a gateway only calls of its region (and names only
//! fleet slots of that region), a dialler only under the current leadership term with
//! the call's lease token. Lease tokens are for nodes; users never see them.

use std::sync::Arc;

use chrono::Duration;
use subtle::ConstantTimeEq;
use tonic::Request;
use vox_domain::call::{self, Call, CallState, Channel, Direction, Recording, Transition};
use vox_domain::node::{Node, NodeKind};
use vox_domain::phone::E164;
use vox_domain::user::Role;
use vox_domain::{Error, ErrorCode, Result, ids, time};
use vox_proto::backend::v1 as pb;
use vox_proto::backend::v1::call_service_server::CallService;
use vox_store::{CallQuery, ClusterEvent, LeaseRequest};

use super::{RpcResult, limit, reply, required_id};
use crate::auth::Principal;
use crate::bridge::Bridge;
use crate::metrics::label;

#[derive(Debug, Clone)]
pub struct Calls(pub Arc<Bridge>);

const READERS: &[NodeKind] = &[NodeKind::Dialler, NodeKind::Gateway, NodeKind::Fleet, NodeKind::Console];
const MOVERS: &[NodeKind] = &[NodeKind::Dialler, NodeKind::Gateway, NodeKind::Fleet];

/// Page tokens are "<created_at millis>:<call id>" of the last call returned.
fn parse_page_token(token: &str) -> Result<Option<(chrono::DateTime<chrono::Utc>, String)>> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || Error::invalid("page_token", "not a token from a previous ListCalls response");
    let (ms, id) = token.split_once(':').ok_or_else(bad)?;
    let ms: i64 = ms.parse().map_err(|_| bad())?;
    let at = chrono::DateTime::from_timestamp_millis(ms).ok_or_else(bad)?;
    Ok(Some((at, id.to_string())))
}

fn free_text(field: &str, v: &str, max: usize) -> Result<String> {
    if v.len() > max {
        return Err(Error::invalid(field, format!("at most {max} characters")));
    }
    Ok(v.trim().to_string())
}

/// A call as `principal` may see it: users get no lease token (it is the dialler's proof
/// of holding the call, and whoever has it can move the call as the dialler).
fn call_for(principal: &Principal, c: &Call) -> pb::Call {
    let mut out = call::call_to_proto(c);
    if matches!(principal, Principal::User(_))
        && let Some(lease) = out.lease.as_mut()
    {
        lease.token.clear();
    }
    out
}

/// Compares lease tokens in constant time, so timing does not reveal how much of a
/// guessed token is right.
fn same_token(given: &str, held: &str) -> bool {
    bool::from(given.as_bytes().ct_eq(held.as_bytes()))
}

/// A fleet node acts only on calls held by its own slots.
fn require_own_slot(node: &Node, c: &Call) -> Result<()> {
    if c.node_id != node.id {
        return Err(Error::permission_denied(format!(
            "call {} is not on a slot of node {}; a fleet node acts only on its own calls",
            c.id, node.id
        )));
    }
    Ok(())
}

/// A gateway acts only on calls of its own region.
fn require_gateway_region<'a>(gateway: &'a Node, c: &Call) -> Result<&'a str> {
    match gateway.region_id.as_deref() {
        Some(region) if region == c.region_id => Ok(region),
        Some(region) => Err(Error::permission_denied(format!(
            "call {} is in region {}; gateway {} serves region {region} only",
            c.id, c.region_id, gateway.id
        ))),
        None => Err(Error::permission_denied(format!(
            "gateway {} has no region, so it may not move calls; register it in a region",
            gateway.id
        ))),
    }
}

impl Calls {
    async fn create_inbound(&self, req: Request<pb::CreateInboundCallRequest>) -> Result<pb::Call> {
        let principal = self.0.auth.user_or_node(req.metadata(), Role::Admin, &[NodeKind::Gateway]).await?;
        let r = req.into_inner();
        let channel = Channel::from_proto("channel", r.channel)?;
        let region_id = match (r.region_id.trim(), &principal) {
            ("", Principal::Node(n)) => n.region_id.clone().ok_or_else(|| Error::invalid("region_id", "required"))?,
            ("", Principal::User(_)) => return Err(Error::invalid("region_id", "required")),
            (id, Principal::Node(n)) if n.region_id.as_deref() != Some(id) => {
                return Err(Error::permission_denied(format!(
                    "region_id {id:?} is not the region of gateway {}; a gateway creates calls in its own region only",
                    n.id
                )));
            }
            (id, _) => id.to_string(),
        };
        if self.0.stores.regions.get_region(&region_id).await?.is_none() {
            return Err(Error::invalid("region_id", format!("no region {region_id:?}")));
        }
        let campaign_id = match r.campaign_id.trim() {
            "" => None,
            id => {
                if self.0.stores.campaigns.get_campaign(id).await?.is_none() {
                    return Err(Error::invalid("campaign_id", format!("no campaign {id:?}")));
                }
                Some(id.to_string())
            }
        };
        let (from, to) = match channel {
            // Caller ids may be withheld ("anonymous"), so only the dialled number is E.164.
            Channel::Phone => {
                (free_text("from_number", &r.from_number, 64)?, E164::field("to_number", &r.to_number)?.to_string())
            }
            Channel::Web => {
                (free_text("from_number", &r.from_number, 200)?, free_text("to_number", &r.to_number, 200)?)
            }
        };
        let now = self.0.clock.now();
        let mut c = Call::outbound("", &region_id, &to, &from, now);
        c.id = ids::new_id(ids::CALL);
        c.campaign_id = campaign_id;
        c.direction = Direction::Inbound;
        c.channel = channel;
        c.state = CallState::Answered;
        c.answered_at = Some(now);
        c.provider_call_id = free_text("provider_call_id", &r.provider_call_id, 200)?;
        vox_telemetry::trace::attribute("call_id", c.id.as_str());
        self.0.stores.calls.insert_call(&c, &principal.actor()).await?;
        self.0.publish(ClusterEvent::CallChanged(c.id.clone()));
        Ok(call_for(&principal, &c))
    }

    async fn transition(&self, req: Request<pb::TransitionCallRequest>) -> Result<pb::Call> {
        let (principal, scope) = self.0.auth.user_or_node_in_scope(req.metadata(), Role::Operator, MOVERS).await?;
        let r = req.into_inner();
        vox_telemetry::trace::attribute("call_id", r.call_id.as_str());
        if scope.campaign().is_some() {
            // Only a cancel reaches here from a scoped key (users may only cancel).
            let id = required_id("call_id", &r.call_id)?;
            let call = self.0.stores.calls.get_call(&id).await?.ok_or_else(|| Error::not_found("call", &id))?;
            scope.check(call.campaign_id.as_deref(), "call", &id)?;
        }
        let to = CallState::from_proto("to_state", r.to_state)?;
        let is_dialler = matches!(&principal, Principal::Node(n) if n.kind == NodeKind::Dialler);
        if matches!(principal, Principal::User(_)) && to != CallState::Canceled {
            return Err(Error::permission_denied(
                "users may only cancel calls; the dialler, gateways and workers move them",
            ));
        }
        if to == CallState::Pending && !is_dialler {
            return Err(Error::permission_denied(
                "only the dialler returns calls to pending (a lease it will not use, or a dial the carrier refused)",
            ));
        }
        if is_dialler && r.fencing_term == 0 {
            return Err(Error::invalid("fencing_term", "required from a dialler: the term of its leadership lease"));
        }
        let recording = match r.recording {
            Some(rec) if rec.key.trim().is_empty() => {
                return Err(Error::invalid("recording.key", "required with a recording"));
            }
            Some(rec) => Some(Recording {
                key: free_text("recording.key", &rec.key, 1024)?,
                duration_ms: rec.duration_ms,
                size_bytes: rec.size_bytes,
            }),
            None => None,
        };
        let mut t = Transition {
            call_id: required_id("call_id", &r.call_id)?,
            to: Some(to),
            actor: principal.actor(),
            fencing_term: r.fencing_term,
            lease_token: r.lease_token,
            require_lease_token: is_dialler,
            reason: free_text("reason", &r.reason, 500)?,
            provider_call_id: (!r.provider_call_id.is_empty()).then(|| r.provider_call_id.clone()),
            node_id: (!r.node_id.is_empty()).then(|| r.node_id.clone()),
            worker_index: (r.worker_index > 0).then_some(r.worker_index),
            recording,
        };
        if let Principal::Node(node) = &principal
            && let Err(e) = self.authorize_move(node, &mut t).await
        {
            self.0.metrics.transition_rejections.get_or_create(&label("code", format!("{:?}", e.code))).inc();
            return Err(e);
        }
        match self.0.stores.calls.transition_call(&t, self.0.clock.now()).await {
            Ok(c) => {
                self.0.metrics.transitions.get_or_create(&label("to_state", to.as_str())).inc();
                self.0.publish(ClusterEvent::CallChanged(c.id.clone()));
                Ok(call_for(&principal, &c))
            }
            Err(e) => {
                self.0.metrics.transition_rejections.get_or_create(&label("code", format!("{:?}", e.code))).inc();
                Err(e)
            }
        }
    }

    /// Ties a node's move to the call as it is now. The store checks the state machine,
    /// the term (not below the current one) and a leased call's token again when it
    /// writes, so a change between this read and the write is still caught.
    async fn authorize_move(&self, node: &Node, t: &mut Transition) -> Result<()> {
        let c = self.0.stores.calls.get_call(&t.call_id).await?.ok_or_else(|| Error::not_found("call", &t.call_id))?;
        match node.kind {
            NodeKind::Fleet => {
                // A worker may take an unassigned call of its region onto its slot (the
                // move to attaching); every other move needs the call on its own slots.
                let assigns = c.node_id.is_empty()
                    && t.to == Some(CallState::Attaching)
                    && node.region_id.as_deref() == Some(c.region_id.as_str());
                if !assigns {
                    require_own_slot(node, &c)?;
                }
                // The slot is this node's own, whatever the request says.
                t.node_id = Some(node.id.clone());
            }
            NodeKind::Gateway => {
                let region = require_gateway_region(node, &c)?;
                if let Some(slot_node) = &t.node_id {
                    self.require_fleet_of(region, slot_node).await?;
                }
            }
            NodeKind::Dialler => {
                let current = self.0.stores.leadership.leadership().await?.term;
                if t.fencing_term < current {
                    return Err(Error::precondition(format!(
                        "stale fencing term {}: the current leadership term is {current}; this dialler no longer leads",
                        t.fencing_term
                    )));
                }
                if t.fencing_term > current {
                    return Err(Error::precondition(format!(
                        "fencing term {} is ahead of the current leadership term {current}; no dialler holds it",
                        t.fencing_term
                    )));
                }
                // The lease outlives `leased` (dialing, ringing, ...), and so does the
                // need to hold it: a standby dialler with the right term still may not
                // move a call another dialler leased.
                if let Some(lease) = &c.lease
                    && !same_token(&t.lease_token, &lease.token)
                {
                    return Err(Error::precondition(format!(
                        "lease token does not match the lease on call {} (held by {})",
                        c.id, lease.owner
                    )));
                }
                // Diallers place calls; they do not assign them to slots.
                t.node_id = None;
                t.worker_index = None;
            }
            kind => {
                return Err(Error::permission_denied(format!("a {} node cannot move calls", kind.as_str())));
            }
        }
        Ok(())
    }

    /// The slot a gateway names must be on a fleet node of the gateway's region.
    async fn require_fleet_of(&self, region: &str, node_id: &str) -> Result<()> {
        let id = required_id("node_id", node_id)?;
        let Some(n) = self.0.stores.nodes.get_node(&id).await? else {
            return Err(Error::invalid("node_id", format!("no node {id:?}")));
        };
        if n.kind != NodeKind::Fleet || n.region_id.as_deref() != Some(region) {
            return Err(Error::permission_denied(format!(
                "node_id {id:?} is not a fleet node of region {region}; a gateway attaches calls to its region's slots only"
            )));
        }
        Ok(())
    }

    async fn lease(&self, req: Request<pb::LeaseCallsRequest>) -> Result<pb::LeaseCallsResponse> {
        let principal = self.0.auth.user_or_node(req.metadata(), Role::Admin, &[NodeKind::Dialler]).await?;
        let Principal::Node(node) = principal else {
            return Err(Error::permission_denied("only dialler nodes lease calls"));
        };
        let r = req.into_inner();
        let owner = if r.owner.is_empty() { node.id.clone() } else { r.owner.clone() };
        if owner != node.id {
            return Err(Error::permission_denied(format!(
                "owner {owner:?} is not this dialler ({}); lease only for yourself",
                node.id
            )));
        }
        let max = match r.max {
            0 => return Err(Error::invalid("max", "required: 1-1000 calls")),
            n => limit("max", n, 1, 1000)?,
        };
        let ttl = match r.lease_ttl_seconds {
            0 => 30,
            n if n <= 600 => n,
            n => return Err(Error::invalid("lease_ttl_seconds", format!("{n} is over 600"))),
        };
        let lease = LeaseRequest {
            campaign_id: required_id("campaign_id", &r.campaign_id)?,
            max,
            owner,
            fencing_term: r.fencing_term,
            ttl: Duration::seconds(i64::from(ttl)),
        };
        match self.0.stores.calls.lease_calls(&lease, self.0.clock.now()).await {
            Ok(calls) => {
                let calls = self.drop_do_not_call(&lease.campaign_id, calls).await?;
                self.0.metrics.calls_leased.inc_by(calls.len() as u64);
                if !calls.is_empty() {
                    self.0.publish(ClusterEvent::CallChanged(String::new()));
                }
                Ok(pb::LeaseCallsResponse { calls: calls.iter().map(call::call_to_proto).collect() })
            }
            Err(e) => {
                self.0.metrics.lease_rejections.get_or_create(&label("code", format!("{:?}", e.code))).inc();
                if e.code == ErrorCode::FailedPrecondition {
                    tracing::warn!(node_id = %node.id, error = %e.message, "lease refused");
                }
                Err(e)
            }
        }
    }
}

impl Calls {
    /// Cancels the leased calls whose numbers are on the do-not-call list (global or the
    /// campaign's) and returns the others: a listed number is never handed to the dialler.
    async fn drop_do_not_call(&self, campaign_id: &str, calls: Vec<Call>) -> Result<Vec<Call>> {
        if calls.is_empty() {
            return Ok(calls);
        }
        let numbers: Vec<String> = calls.iter().map(|c| c.to_number.clone()).collect();
        let blocked = self.0.stores.dnc.blocked_numbers(campaign_id, &numbers).await?;
        if blocked.is_empty() {
            return Ok(calls);
        }
        let mut keep = Vec::with_capacity(calls.len());
        for c in calls {
            if !blocked.contains(&c.to_number) {
                keep.push(c);
                continue;
            }
            let (fencing_term, lease_token) =
                c.lease.as_ref().map(|l| (l.fencing_term, l.token.clone())).unwrap_or_default();
            let t = Transition {
                call_id: c.id.clone(),
                to: Some(CallState::Canceled),
                actor: "system".into(),
                fencing_term,
                lease_token,
                require_lease_token: true,
                reason: "do_not_call".into(),
                provider_call_id: None,
                node_id: None,
                worker_index: None,
                recording: None,
            };
            self.0.stores.calls.transition_call(&t, self.0.clock.now()).await?;
            self.0.metrics.transitions.get_or_create(&label("to_state", "canceled")).inc();
            tracing::info!(call_id = %c.id, "not dialled: the number is on the do-not-call list");
        }
        Ok(keep)
    }
}

#[tonic::async_trait]
impl CallService for Calls {
    async fn get_call(&self, req: Request<pb::GetCallRequest>) -> RpcResult<pb::Call> {
        let r = async {
            let (principal, scope) = self.0.auth.reader_in_scope(req.metadata(), READERS).await?;
            let id = required_id("id", &req.get_ref().id)?;
            vox_telemetry::trace::attribute("call_id", id.as_str());
            let c = self.0.stores.calls.get_call(&id).await?.ok_or_else(|| Error::not_found("call", &id))?;
            scope.check(c.campaign_id.as_deref(), "call", &id)?;
            Ok(call_for(&principal, &c))
        };
        reply("GetCall", r.await)
    }

    async fn list_calls(&self, req: Request<pb::ListCallsRequest>) -> RpcResult<pb::ListCallsResponse> {
        let r = async {
            let (principal, scope) = self.0.auth.reader_in_scope(req.metadata(), READERS).await?;
            let q = req.get_ref();
            let asked = q.campaign_id.trim();
            // A key limited to a campaign lists that campaign's calls, whatever it asks.
            if let Some(campaign) = scope.campaign()
                && !asked.is_empty()
                && asked != campaign
            {
                return Err(Error::not_found("campaign", asked));
            }
            let mut states = Vec::new();
            for (i, s) in q.states.iter().enumerate() {
                states.push(CallState::from_proto(&format!("states[{i}]"), *s)?);
            }
            let query = CallQuery {
                campaign_id: scope
                    .campaign()
                    .map(String::from)
                    .or_else(|| (!asked.is_empty()).then(|| asked.to_string())),
                states,
                created_after: q.created_after.as_ref().map(|t| time::from_proto("created_after", t)).transpose()?,
                created_before: q.created_before.as_ref().map(|t| time::from_proto("created_before", t)).transpose()?,
                limit: limit("limit", q.limit, 100, 1000)?,
                after: parse_page_token(&q.page_token)?,
            };
            let calls = self.0.stores.calls.list_calls(&query).await?;
            let next_page_token = match calls.last() {
                Some(last) if calls.len() == query.limit => {
                    format!("{}:{}", last.created_at.timestamp_millis(), last.id)
                }
                _ => String::new(),
            };
            let calls = calls.iter().map(|c| call_for(&principal, c)).collect();
            Ok(pb::ListCallsResponse { calls, next_page_token })
        };
        reply("ListCalls", r.await)
    }

    async fn list_call_events(&self, req: Request<pb::ListCallEventsRequest>) -> RpcResult<pb::ListCallEventsResponse> {
        let r = async {
            let (_, scope) = self.0.auth.reader_in_scope(req.metadata(), READERS).await?;
            let id = required_id("call_id", &req.get_ref().call_id)?;
            let call = self.0.stores.calls.get_call(&id).await?.ok_or_else(|| Error::not_found("call", &id))?;
            scope.check(call.campaign_id.as_deref(), "call", &id)?;
            let events = self.0.stores.calls.list_call_events(&id).await?;
            Ok(pb::ListCallEventsResponse { events: events.iter().map(call::event_to_proto).collect() })
        };
        reply("ListCallEvents", r.await)
    }

    async fn create_inbound_call(&self, req: Request<pb::CreateInboundCallRequest>) -> RpcResult<pb::Call> {
        reply("CreateInboundCall", self.create_inbound(req).await)
    }

    async fn transition_call(&self, req: Request<pb::TransitionCallRequest>) -> RpcResult<pb::Call> {
        reply("TransitionCall", self.transition(req).await)
    }

    async fn lease_calls(&self, req: Request<pb::LeaseCallsRequest>) -> RpcResult<pb::LeaseCallsResponse> {
        reply("LeaseCalls", self.lease(req).await)
    }

    async fn set_call_recording(&self, req: Request<pb::SetCallRecordingRequest>) -> RpcResult<pb::Call> {
        let r = async {
            let principal = self.0.auth.user_or_node(req.metadata(), Role::Admin, &[NodeKind::Fleet]).await?;
            let r = req.into_inner();
            let id = required_id("call_id", &r.call_id)?;
            if let Principal::Node(node) = &principal {
                let c = self.0.stores.calls.get_call(&id).await?.ok_or_else(|| Error::not_found("call", &id))?;
                require_own_slot(node, &c)?;
            }
            let rec = r.recording.ok_or_else(|| Error::invalid("recording", "required"))?;
            if rec.key.trim().is_empty() {
                return Err(Error::invalid("recording.key", "required"));
            }
            let rec = Recording {
                key: free_text("recording.key", &rec.key, 1024)?,
                duration_ms: rec.duration_ms,
                size_bytes: rec.size_bytes,
            };
            let c = self.0.stores.calls.set_recording(&id, &rec, self.0.clock.now()).await?;
            self.0.publish(ClusterEvent::CallChanged(c.id.clone()));
            Ok(call_for(&principal, &c))
        };
        reply("SetCallRecording", r.await)
    }
}
