//! Reserving a worker for a call: claim a slot ([`crate::fleet`]), ask its worker to
//! `Reserve` it for the call, and on a refusal (RESOURCE_EXHAUSTED: another gateway got
//! there first; UNAVAILABLE: draining) move on to the next slot. Used by the media relay
//! when a stream arrives, and by the outbound answer, which reserves before it tells the
//! carrier where to stream ([`handed_over`] is the other half: the gateway that receives
//! that stream takes the reservation over).

use std::collections::HashSet;

use vox_proto::backend::v1 as bpb;
use vox_proto::common::v1 as common;
use vox_proto::fleet::v1 as pb;

use crate::Gate;
use crate::fleet::{Claim, Refusal, SlotId};
use crate::metrics::label;

/// A worker reserved for a call.
#[derive(Debug)]
pub(crate) struct Reserved {
    pub claim: Claim,
    pub reservation_id: String,
    /// Made for this stream, so this stream gives it back if the call cannot attach; a
    /// reservation taken over from the answer belongs to whichever stream attaches.
    pub ours: bool,
}

/// The agent that answers the call: its campaign's, or the worker's default.
pub(crate) async fn agent_of(gate: &Gate, call: &bpb::Call) -> Option<common::AgentSettings> {
    if call.campaign_id.is_empty() {
        return None;
    }
    let req = bpb::GetCampaignRequest { id: call.campaign_id.clone() };
    gate.bridge.campaigns().get_campaign(req).await.ok().and_then(|c| c.into_inner().spec).and_then(|s| s.agent)
}

fn request(call: &bpb::Call, agent: Option<common::AgentSettings>, ttl_ms: u32) -> pb::ReserveRequest {
    pb::ReserveRequest {
        call_id: call.id.clone(),
        ttl_ms,
        campaign_id: call.campaign_id.clone(),
        region_id: call.region_id.clone(),
        direction: call.direction,
        channel: call.channel,
        from_number: call.from_number.clone(),
        to_number: call.to_number.clone(),
        agent,
    }
}

fn refusal(s: &tonic::Status) -> Refusal {
    match s.code() {
        // ALREADY_EXISTS: the worker holds a reservation for this very call (an answer's,
        // whose stream did not say so): busy, not broken.
        tonic::Code::ResourceExhausted | tonic::Code::AlreadyExists => Refusal::Busy,
        tonic::Code::Unavailable if s.message().contains("draining") => Refusal::Draining,
        _ => Refusal::Unreachable,
    }
}

fn note_refusal(gate: &Gate, call_id: &str, claim: &Claim, s: &tonic::Status) {
    let why = refusal(s);
    tracing::info!(call_id, worker = %claim.slot, code = ?s.code(), error = s.message(), refusal = ?why, "worker refused the reservation; trying the next slot");
    gate.metrics.reservation_retries.get_or_create(&label("answer", format!("{why:?}").to_lowercase())).inc();
    gate.fleet.refused(&claim.slot, why);
}

/// Reserves a worker for `call` for `ttl_ms`: `first` (a slot already claimed) and then
/// the next best slots not in `tried`, until one takes it. None when no slot did.
pub(crate) async fn reserve(
    gate: &Gate,
    call: &bpb::Call,
    agent: Option<common::AgentSettings>,
    ttl_ms: u32,
    first: Option<Claim>,
    tried: &mut HashSet<SlotId>,
) -> Option<Reserved> {
    if !gate.credential.ready() {
        // Not the workers' fault: without a worker token every one of them refuses.
        tracing::warn!(call_id = %call.id, "no worker token from voxbridge yet; cannot reserve a worker");
        return None;
    }
    let mut next = first;
    loop {
        let claim = next.take().or_else(|| gate.fleet.claim(tried))?;
        tried.insert(claim.slot.clone());
        let mut client = claim.client.clone();
        match client.reserve(request(call, agent.clone(), ttl_ms)).await {
            Ok(r) => {
                gate.metrics.reservations.inc();
                return Some(Reserved { claim, reservation_id: r.into_inner().reservation_id, ours: true });
            }
            Err(s) => note_refusal(gate, &call.id, &claim, &s),
        }
    }
}

/// Takes over the reservation an outbound answer made (`slot`, the TwiML's
/// `<node_id>/<worker_index>/<reservation_id>`) on this gateway: claims that very slot and
/// confirms the reservation with its worker before the call moves to attaching, so a
/// reservation that is gone leaves the call free to go elsewhere. The worker answers a
/// second `Reserve` for the same call ALREADY_EXISTS while its reservation lives; if it
/// expired, the worker reserves afresh for the call (and that one is used). None: the
/// slot is unknown here, busy with this gateway's calls, or its worker refused: reserve
/// the normal way, without it (it is added to `tried`).
pub(crate) async fn handed_over(
    gate: &Gate,
    call: &bpb::Call,
    agent: Option<common::AgentSettings>,
    slot: &str,
    held: &mut Option<Claim>,
    tried: &mut HashSet<SlotId>,
) -> Option<Reserved> {
    let Some((id, reservation_id)) = SlotId::parse_reserved(slot) else {
        tracing::warn!(call_id = %call.id, slot, "the stream's slot parameter is not <node_id>/<worker_index>/<reservation_id>; reserving afresh");
        return None;
    };
    tried.insert(id.clone());
    let claim = match held.take_if(|c| c.slot == id) {
        Some(c) => c,
        None => match gate.fleet.claim_reserved(&id) {
            Some(c) => c,
            None => {
                tracing::info!(call_id = %call.id, worker = %id, "the reserved slot is unknown here or in use; reserving afresh");
                return None;
            }
        },
    };
    let mut client = claim.client.clone();
    match client.reserve(request(call, agent, gate.args.reservation_ttl_ms)).await {
        Err(s) if s.code() == tonic::Code::AlreadyExists => {
            gate.metrics.reservations.inc();
            Some(Reserved { claim, reservation_id, ours: false })
        }
        Ok(r) => {
            tracing::info!(call_id = %call.id, worker = %id, "the answer's reservation had expired; the worker reserved again");
            gate.metrics.reservations.inc();
            Some(Reserved { claim, reservation_id: r.into_inner().reservation_id, ours: true })
        }
        Err(s) => {
            note_refusal(gate, &call.id, &claim, &s);
            None
        }
    }
}

impl Reserved {
    /// Gives the reservation back if this stream made it (best effort: it expires anyway).
    pub(crate) async fn release(self) {
        if self.ours {
            let mut client = self.claim.client.clone();
            let _ = client.release(pb::ReleaseRequest { reservation_id: self.reservation_id }).await;
        }
    }
}
