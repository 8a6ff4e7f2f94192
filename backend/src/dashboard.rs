//! The dashboard's figures, computed from nodes, presence and call records.

use std::collections::HashMap;

use vox_domain::node::{DesiredState, NodeKind, WorkerState};
use vox_domain::{Result, time};
use vox_proto::backend::v1 as pb;

use crate::bridge::Bridge;
use crate::metrics::label;

pub async fn snapshot(bridge: &Bridge) -> Result<pb::Dashboard> {
    let now = bridge.clock.now();
    let staleness = bridge.settings.node_staleness();
    let nodes = bridge.stores.nodes.list_nodes(&Default::default()).await?;
    let presence: HashMap<String, _> =
        bridge.stores.presence.list_presence().await?.into_iter().map(|p| (p.node_id.clone(), p)).collect();
    let totals = bridge.stores.calls.call_totals(now).await?;

    let mut cap = pb::Capacity::default();
    let mut online_by_kind: HashMap<NodeKind, i64> = HashMap::new();
    let mut registered_by_kind: HashMap<NodeKind, i64> = HashMap::new();
    for n in nodes.iter().filter(|n| n.desired_state != DesiredState::Disabled) {
        let p = presence.get(&n.id).filter(|p| p.is_fresh(now, staleness));
        *registered_by_kind.entry(n.kind).or_default() += 1;
        if p.is_some() {
            *online_by_kind.entry(n.kind).or_default() += 1;
        }
        match n.kind {
            NodeKind::Fleet => {
                cap.fleet_nodes_total += 1;
                if let Some(p) = p {
                    cap.fleet_nodes_online += 1;
                    cap.worker_slots_total += p.workers.len() as u32;
                    if n.desired_state == DesiredState::Active {
                        cap.worker_slots_free +=
                            p.workers.iter().filter(|w| w.state == WorkerState::Idle).count() as u32;
                    }
                }
            }
            NodeKind::Gateway => {
                cap.gateway_nodes_total += 1;
                if p.is_some() {
                    cap.gateway_nodes_online += 1;
                }
            }
            _ => {}
        }
    }

    let m = &bridge.metrics;
    for kind in [NodeKind::Fleet, NodeKind::Gateway, NodeKind::Console, NodeKind::Background, NodeKind::Dialler] {
        m.nodes_online
            .get_or_create(&label("kind", kind.as_str()))
            .set(online_by_kind.get(&kind).copied().unwrap_or(0));
        m.nodes_registered
            .get_or_create(&label("kind", kind.as_str()))
            .set(registered_by_kind.get(&kind).copied().unwrap_or(0));
    }
    m.worker_slots_free.set(i64::from(cap.worker_slots_free));
    m.worker_slots_total.set(i64::from(cap.worker_slots_total));
    m.calls_live.set((totals.live_phone + totals.live_web) as i64);
    m.calls_processing.set(totals.processing as i64);
    m.calls_pending_due.set(totals.pending_due as i64);

    Ok(pb::Dashboard {
        at: Some(time::to_proto(now)),
        live: Some(pb::LiveConversations { phone: totals.live_phone, web: totals.live_web }),
        pipeline: Some(pb::Pipeline { processing: totals.processing, pending: totals.pending_due }),
        capacity: Some(cap),
    })
}
