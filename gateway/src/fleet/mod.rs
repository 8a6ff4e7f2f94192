//! Every worker slot the gateway can send a call to, and the least-loaded claim.
//!
//! Slots come from voxbridge (the workers of every online, active fleet node, refreshed
//! every 2 s from their heartbeats) and from a static `FLEET_URLS` list (polled with
//! `Status`). A call claims a slot here before anything else and holds the claim until
//! it ends, so two calls never go to one single-call worker; a worker that answers
//! RESOURCE_EXHAUSTED anyway (another gateway got there first) is marked busy and the
//! next slot is tried — that is never a health failure. Slots of nodes that drain, go
//! offline or are removed take no new calls, and their live calls are left alone.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tonic::transport::Channel;
use vox_proto::backend::v1 as bpb;
use vox_proto::common::v1::WorkerState;
use vox_proto::fleet::v1::worker_service_client::WorkerServiceClient;

#[derive(Debug)]
struct Slot {
    node_id: String,
    index: u32,
    client: WorkerServiceClient<Channel>,
    /// Calls this gateway holds on the slot.
    in_flight: u32,
    capacity: u32,
    /// The worker reports a call this gateway does not hold (another gateway, or one
    /// from before a restart).
    busy_elsewhere: bool,
    /// Its node is online and active, and the worker is not draining.
    accepting: bool,
    /// Seen in the latest refresh of its source.
    present: bool,
    from_static: bool,
}

impl Slot {
    fn load(&self) -> u32 {
        self.in_flight.max(u32::from(self.busy_elsewhere))
    }

    fn free(&self) -> bool {
        self.accepting && self.load() < self.capacity
    }
}

/// A slot held for one call; the claim is given back when this is dropped.
#[derive(Debug)]
pub struct Claim {
    fleet: Arc<Fleet>,
    pub url: String,
    pub node_id: String,
    pub index: u32,
    pub client: WorkerServiceClient<Channel>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut slots = self.fleet.lock();
        if let Some(s) = slots.get_mut(&self.url) {
            s.in_flight = s.in_flight.saturating_sub(1);
        }
        Fleet::forget_gone(&mut slots);
    }
}

/// How the worker answered a reservation, as the fleet needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// RESOURCE_EXHAUSTED: busy with a call we don't hold.
    Busy,
    /// UNAVAILABLE: draining or shutting down.
    Draining,
    /// Could not reach it.
    Unreachable,
}

#[derive(Debug, Default)]
pub struct Fleet {
    slots: Mutex<HashMap<String, Slot>>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SlotView {
    pub url: String,
    pub node_id: String,
    pub worker_index: u32,
    /// The seeds' field names: calls on this worker and its capacity.
    pub worker_calls: u32,
    pub worker_max: u32,
    pub accepting: bool,
}

impl Fleet {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn forget_gone(slots: &mut HashMap<String, Slot>) {
        slots.retain(|_, s| s.present || s.in_flight > 0);
    }

    /// Claims the least-loaded free slot not in `tried`.
    pub fn claim(self: &Arc<Self>, tried: &HashSet<String>) -> Option<Claim> {
        let mut slots = self.lock();
        let (url, slot) = slots
            .iter_mut()
            .filter(|(url, s)| s.free() && !tried.contains(*url))
            .min_by(|(ua, a), (ub, b)| a.load().cmp(&b.load()).then_with(|| ua.cmp(ub)))?;
        slot.in_flight += 1;
        Some(Claim {
            fleet: Arc::clone(self),
            url: url.clone(),
            node_id: slot.node_id.clone(),
            index: slot.index,
            client: slot.client.clone(),
        })
    }

    /// Records a worker's refusal until the next refresh says otherwise.
    pub fn refused(&self, url: &str, why: Refusal) {
        if let Some(s) = self.lock().get_mut(url) {
            match why {
                Refusal::Busy => s.busy_elsewhere = true,
                Refusal::Draining | Refusal::Unreachable => s.accepting = false,
            }
        }
    }

    /// Applies voxbridge's view of the fleet: the workers of online, active fleet nodes.
    pub fn apply_nodes(&self, nodes: &[bpb::Node]) {
        let mut slots = self.lock();
        for s in slots.values_mut().filter(|s| !s.from_static) {
            s.present = false;
        }
        for n in nodes.iter().filter(|n| n.kind() == bpb::NodeKind::Fleet && n.online) {
            let active = n.desired_state() == bpb::DesiredState::Active;
            for w in &n.workers {
                let state = WorkerState::try_from(w.state).unwrap_or(WorkerState::Unspecified);
                let entry = match slots.get_mut(&w.endpoint) {
                    Some(s) => s,
                    None => {
                        let Ok(channel) = vox_node::channel::connect_lazy(&w.endpoint) else {
                            tracing::warn!(node_id = %n.id, endpoint = %w.endpoint, "worker endpoint is not a usable URL");
                            continue;
                        };
                        slots.entry(w.endpoint.clone()).or_insert(Slot {
                            node_id: n.id.clone(),
                            index: w.index,
                            client: WorkerServiceClient::new(channel),
                            in_flight: 0,
                            capacity: 1,
                            busy_elsewhere: false,
                            accepting: false,
                            present: true,
                            from_static: false,
                        })
                    }
                };
                entry.present = true;
                entry.accepting = active && state != WorkerState::Draining;
                entry.busy_elsewhere =
                    entry.in_flight == 0 && matches!(state, WorkerState::InCall | WorkerState::Reserved);
            }
        }
        Self::forget_gone(&mut slots);
    }

    /// Applies the polled status of a static worker (None: it did not answer).
    pub fn apply_static(
        &self,
        url: &str,
        client: &WorkerServiceClient<Channel>,
        status: Option<&vox_proto::fleet::v1::WorkerStatus>,
    ) {
        let mut slots = self.lock();
        let entry = slots.entry(url.to_string()).or_insert(Slot {
            node_id: String::new(),
            index: 0,
            client: client.clone(),
            in_flight: 0,
            capacity: 1,
            busy_elsewhere: false,
            accepting: false,
            present: true,
            from_static: true,
        });
        entry.present = true;
        match status {
            Some(st) => {
                entry.index = st.worker_index;
                entry.capacity = st.worker_max.max(1);
                entry.accepting = st.state != WorkerState::Draining as i32;
                entry.busy_elsewhere = st.worker_calls > entry.in_flight && entry.in_flight == 0;
            }
            None => entry.accepting = false,
        }
    }

    pub fn view(&self) -> Vec<SlotView> {
        let slots = self.lock();
        let mut out: Vec<SlotView> = slots
            .iter()
            .map(|(url, s)| SlotView {
                url: url.clone(),
                node_id: s.node_id.clone(),
                worker_index: s.index,
                worker_calls: s.load(),
                worker_max: s.capacity,
                accepting: s.accepting,
            })
            .collect();
        out.sort_by(|a, b| (&a.node_id, a.worker_index, &a.url).cmp(&(&b.node_id, b.worker_index, &b.url)));
        out
    }

    /// Free slots across the fleet: the seeds' `fleet_available`.
    pub fn available(&self) -> u32 {
        self.lock().values().filter(|s| s.free()).map(|s| s.capacity - s.load()).sum()
    }

    pub fn total(&self) -> u32 {
        self.lock().values().filter(|s| s.present).map(|s| s.capacity).sum()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn node(id: &str, desired: bpb::DesiredState, workers: &[(u32, WorkerState)]) -> bpb::Node {
        bpb::Node {
            id: id.into(),
            kind: bpb::NodeKind::Fleet as i32,
            online: true,
            desired_state: desired as i32,
            workers: workers
                .iter()
                .map(|(i, st)| bpb::WorkerSlot {
                    index: *i,
                    state: *st as i32,
                    call_id: String::new(),
                    endpoint: format!("http://127.0.0.1:1{i}{}", id.len()),
                })
                .collect(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn claims_spread_and_never_double_book() {
        let fleet = Arc::new(Fleet::default());
        fleet.apply_nodes(&[node("a", bpb::DesiredState::Active, &[(1, WorkerState::Idle), (2, WorkerState::Idle)])]);
        assert_eq!(fleet.available(), 2);
        let c1 = fleet.claim(&HashSet::new()).unwrap();
        let c2 = fleet.claim(&HashSet::new()).unwrap();
        assert_ne!(c1.url, c2.url);
        assert!(fleet.claim(&HashSet::new()).is_none(), "every slot taken");
        drop(c1);
        assert_eq!(fleet.available(), 1);
        assert!(fleet.claim(&HashSet::new()).is_some(), "a freed slot is reused");
    }

    #[tokio::test]
    async fn busy_draining_and_removed_nodes_take_no_new_calls() {
        let fleet = Arc::new(Fleet::default());
        fleet.apply_nodes(&[
            node("a", bpb::DesiredState::Maintenance, &[(1, WorkerState::Idle)]),
            node("bb", bpb::DesiredState::Active, &[(1, WorkerState::InCall), (2, WorkerState::Idle)]),
        ]);
        assert_eq!(fleet.available(), 1, "maintenance and another gateway's call are not free");
        let held = fleet.claim(&HashSet::new()).unwrap();
        assert_eq!(held.node_id, "bb");
        // The node disappears: its live call keeps its slot until it ends.
        fleet.apply_nodes(&[]);
        assert_eq!(fleet.view().len(), 1);
        assert!(fleet.claim(&HashSet::new()).is_none());
        drop(held);
        assert!(fleet.view().is_empty());
    }

    #[tokio::test]
    async fn a_busy_refusal_moves_on_to_the_next_slot() {
        let fleet = Arc::new(Fleet::default());
        fleet.apply_nodes(&[node("a", bpb::DesiredState::Active, &[(1, WorkerState::Idle), (2, WorkerState::Idle)])]);
        let first = fleet.claim(&HashSet::new()).unwrap();
        fleet.refused(&first.url, Refusal::Busy);
        let tried: HashSet<String> = [first.url.clone()].into();
        drop(first);
        let next = fleet.claim(&tried).unwrap();
        assert!(!tried.contains(&next.url));
    }
}
