//! Every worker slot the gateway can send a call to, and which one a call claims.
//!
//! Slots come from voxbridge (the workers of every online, active fleet node, refreshed
//! every 2 s from their heartbeats) and from a static `FLEET_URLS` list (polled with
//! `Status`). A slot is named by what it is, never by where it listens: worker `index` of
//! fleet node `node_id` ([`SlotId::Worker`]), so two hosts with the same socket or port
//! layout never collide, and a worker restarted on a new address keeps its slot (its
//! client is rebuilt). Only static workers are named by their URL.
//!
//! A call claims a slot here before anything else and holds the claim until it ends, so
//! two calls never go to one single-call worker; a worker that answers RESOURCE_EXHAUSTED
//! anyway (another gateway got there first) is marked busy and the next slot is tried —
//! that is never a health failure. Slots of nodes that drain, go offline or are removed
//! take no new calls, and their live calls are left alone.
//!
//! Which slot: one in the gateway's own region while any is free, then the host (fleet
//! node) with the smallest fraction of busy slots, then its least-loaded worker; ties are
//! broken by a rotating turn, not by id order, so calls spread across hosts rather than
//! filling one first.
//!
//! Every worker client carries the gateway's worker token ([`WorkerToken`]): workers
//! serve only gateways.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde::Serialize;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use vox_node::tokens::WorkerToken;
use vox_proto::backend::v1 as bpb;
use vox_proto::common::v1::WorkerState;
use vox_proto::fleet::v1::worker_service_client::WorkerServiceClient;

mod slot_id;
pub use slot_id::SlotId;

/// A worker client that authenticates as this gateway.
pub type WorkerClient = WorkerServiceClient<InterceptedService<Channel, WorkerToken>>;

#[derive(Debug)]
struct Slot {
    node_id: String,
    region_id: String,
    index: u32,
    /// Where the worker listens now; its client is rebuilt when this changes.
    endpoint: String,
    client: WorkerClient,
    /// Calls this gateway holds on the slot.
    in_flight: u32,
    capacity: u32,
    /// The worker reports a call this gateway does not hold (another gateway, or one
    /// from before a restart).
    busy_elsewhere: bool,
    /// The worker holds a reservation waiting for its media stream, which may come to
    /// any gateway.
    awaiting_stream: bool,
    /// Its node is online and active, and the worker is not draining.
    accepting: bool,
    /// Seen in the latest refresh of its source.
    present: bool,
    from_static: bool,
}

impl Slot {
    /// A slot just learnt of: single-call, idle, and taking no calls until its source
    /// says it may.
    fn new(
        node_id: &str,
        region_id: &str,
        index: u32,
        endpoint: &str,
        client: WorkerClient,
        from_static: bool,
    ) -> Self {
        Slot {
            node_id: node_id.to_string(),
            region_id: region_id.to_string(),
            index,
            endpoint: endpoint.to_string(),
            client,
            in_flight: 0,
            capacity: 1,
            busy_elsewhere: false,
            awaiting_stream: false,
            accepting: false,
            present: true,
            from_static,
        }
    }

    fn load(&self) -> u32 {
        self.in_flight.max(u32::from(self.busy_elsewhere))
    }

    fn free(&self) -> bool {
        self.accepting && self.load() < self.capacity
    }

    fn counted(&self) -> bool {
        self.present || self.in_flight > 0
    }
}

/// A slot held for one call; the claim is given back when this is dropped.
#[derive(Debug)]
pub struct Claim {
    fleet: Arc<Fleet>,
    pub slot: SlotId,
    pub node_id: String,
    pub index: u32,
    pub endpoint: String,
    pub client: WorkerClient,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut slots = self.fleet.lock();
        if let Some(s) = slots.get_mut(&self.slot) {
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

#[derive(Debug)]
pub struct Fleet {
    slots: Mutex<HashMap<SlotId, Slot>>,
    /// The worker token every client carries.
    auth: WorkerToken,
    /// This gateway's region, once known; until then every region is as good.
    region: RwLock<Option<String>>,
    /// Breaks ties between equally loaded hosts and workers, so they take turns.
    turn: AtomicUsize,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SlotView {
    pub url: String,
    pub node_id: String,
    pub region_id: String,
    pub worker_index: u32,
    /// The seeds' field names: calls on this worker and its capacity.
    pub worker_calls: u32,
    pub worker_max: u32,
    pub accepting: bool,
}

impl Fleet {
    pub fn new(auth: WorkerToken) -> Self {
        Fleet { slots: Mutex::default(), auth, region: RwLock::default(), turn: AtomicUsize::new(0) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SlotId, Slot>> {
        self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn forget_gone(slots: &mut HashMap<SlotId, Slot>) {
        slots.retain(|_, s| s.counted());
    }

    /// A client for the worker at `url` (unix://, http:// or https://) carrying this
    /// gateway's worker token.
    pub fn client(&self, url: &str) -> vox_domain::Result<WorkerClient> {
        let channel = vox_node::channel::connect_lazy(url)?;
        Ok(WorkerServiceClient::new(InterceptedService::new(channel, self.auth.clone())))
    }

    /// Sets this gateway's region: its slots are preferred from now on.
    pub fn set_region(&self, region_id: &str) {
        *self.region.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(region_id.to_string());
    }

    pub fn region(&self) -> Option<String> {
        self.region.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn next_turn(&self) -> usize {
        self.turn.fetch_add(1, Ordering::Relaxed)
    }

    /// Claims a free slot not in `tried`: own region first, then the least-loaded host,
    /// then its least-loaded worker.
    ///
    /// When no slot is free in this gateway's view, a slot that is busy only by hearsay
    /// (another gateway's call, as a heartbeat up to a refresh old reported it, or an
    /// earlier refusal) is claimed instead: the worker itself answers in one round trip,
    /// RESOURCE_EXHAUSTED sending the caller on to the next. A stale view must never turn
    /// a call away while a worker is free.
    pub fn claim(self: &Arc<Self>, tried: &HashSet<SlotId>) -> Option<Claim> {
        let region = self.region();
        let mut slots = self.lock();
        let candidates = |usable: fn(&Slot) -> bool| -> Vec<&SlotId> {
            slots.iter().filter(|(id, s)| usable(s) && !tried.contains(*id)).map(|(id, _)| id).collect()
        };
        let mut free = candidates(Slot::free);
        if free.is_empty() {
            free = candidates(|s| s.accepting && s.in_flight < s.capacity);
        }
        // Static workers were named for this gateway: they count as its own region.
        let local = |id: &SlotId| {
            let s = &slots[id];
            s.from_static || region.as_deref().is_none_or(|r| s.region_id == r)
        };
        let mut pool: Vec<&SlotId> = free.iter().copied().filter(|id| local(id)).collect();
        if pool.is_empty() {
            pool = free;
        }
        if pool.is_empty() {
            return None;
        }
        // How busy each candidate host is: busy slots over all its slots.
        let mut hosts: HashMap<&str, (u32, u32)> = pool.iter().map(|id| (id.host(), (0, 0))).collect();
        for (id, s) in slots.iter().filter(|(_, s)| s.counted()) {
            if let Some((busy, all)) = hosts.get_mut(id.host()) {
                *busy += s.load().min(s.capacity);
                *all += s.capacity;
            }
        }
        // a/b < c/d without division: a*d < c*b.
        let fraction = |h: &str| {
            let (busy, all) = hosts[h];
            (u64::from(busy), u64::from(all.max(1)))
        };
        let least = hosts
            .keys()
            .copied()
            .min_by(|a, b| {
                let ((ab, aa), (bb, ba)) = (fraction(a), fraction(b));
                (ab * ba).cmp(&(bb * aa))
            })
            .map(fraction)?;
        let mut tied_hosts: Vec<&str> =
            hosts.keys().copied().filter(|h| fraction(h).0 * least.1 == least.0 * fraction(h).1).collect();
        tied_hosts.sort_unstable();
        let turn = self.next_turn();
        let host = tied_hosts[turn % tied_hosts.len()];
        let on_host: Vec<&SlotId> = pool.iter().copied().filter(|id| id.host() == host).collect();
        let lightest = on_host.iter().map(|id| slots[*id].load()).min()?;
        let mut tied: Vec<&SlotId> = on_host.into_iter().filter(|id| slots[*id].load() == lightest).collect();
        tied.sort_unstable();
        let id = tied[(turn / tied_hosts.len()) % tied.len()].clone();
        let slot = slots.get_mut(&id)?;
        slot.in_flight += 1;
        Some(self.claim_of(id, slot))
    }

    fn claim_of(self: &Arc<Self>, id: SlotId, slot: &Slot) -> Claim {
        Claim {
            fleet: Arc::clone(self),
            slot: id,
            node_id: slot.node_id.clone(),
            index: slot.index,
            endpoint: slot.endpoint.clone(),
            client: slot.client.clone(),
        }
    }

    /// Claims exactly `id`, for a call that already holds a reservation there (made by
    /// whichever gateway answered it): busy or not accepting in this gateway's view does
    /// not matter, only that this gateway knows the slot and holds no call on it.
    pub fn claim_reserved(self: &Arc<Self>, id: &SlotId) -> Option<Claim> {
        let mut slots = self.lock();
        let slot = slots.get_mut(id).filter(|s| s.present && s.in_flight < s.capacity)?;
        slot.in_flight += 1;
        Some(self.claim_of(id.clone(), slot))
    }

    /// Records a worker's refusal until the next refresh says otherwise.
    pub fn refused(&self, id: &SlotId, why: Refusal) {
        if let Some(s) = self.lock().get_mut(id) {
            match why {
                Refusal::Busy => s.busy_elsewhere = true,
                Refusal::Draining | Refusal::Unreachable => s.accepting = false,
            }
        }
    }

    /// Records that this gateway reserved the slot for a stream that may reach another
    /// gateway: it is busy until the next refresh says otherwise.
    pub fn handed_over(&self, id: &SlotId) {
        if let Some(s) = self.lock().get_mut(id) {
            s.busy_elsewhere = true;
            s.awaiting_stream = true;
        }
    }

    /// True when some worker holds a reservation waiting for its stream: a stream that
    /// arrives while no slot is free may be that one.
    pub fn awaiting_streams(&self) -> bool {
        self.lock().values().any(|s| s.present && s.awaiting_stream)
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
                let id = SlotId::Worker { node_id: n.id.clone(), index: w.index };
                let state = WorkerState::try_from(w.state).unwrap_or(WorkerState::Unspecified);
                let stale = slots.get(&id).is_none_or(|s| s.endpoint != w.endpoint);
                if stale {
                    // New, or the worker came back on another address: a new client, or
                    // the one of a slot at the same address (a worker of several calls is
                    // several slots): its calls share one connection, whose frames the
                    // worker reads with one wake-up when they come together.
                    let shared = slots
                        .values()
                        .find(|s| s.node_id == n.id && s.endpoint == w.endpoint)
                        .map(|s| s.client.clone());
                    let client = match shared.map_or_else(|| self.client(&w.endpoint), Ok) {
                        Ok(c) => c,
                        Err(e) => {
                            tracing::warn!(node_id = %n.id, worker = w.index, endpoint = %w.endpoint, error = %e.message, "worker endpoint is not a usable URL");
                            continue;
                        }
                    };
                    match slots.get_mut(&id) {
                        Some(s) => {
                            tracing::info!(node_id = %n.id, worker = w.index, endpoint = %w.endpoint, "worker moved; reconnecting");
                            s.endpoint = w.endpoint.clone();
                            s.client = client;
                        }
                        None => {
                            let slot = Slot::new(&n.id, &n.region_id, w.index, &w.endpoint, client, false);
                            slots.insert(id.clone(), slot);
                        }
                    }
                }
                let Some(entry) = slots.get_mut(&id) else { continue };
                entry.present = true;
                entry.region_id.clone_from(&n.region_id);
                entry.accepting = active && state != WorkerState::Draining;
                entry.busy_elsewhere =
                    entry.in_flight == 0 && matches!(state, WorkerState::InCall | WorkerState::Reserved);
                entry.awaiting_stream = state == WorkerState::Reserved;
            }
            Self::count_shared_workers(&mut slots, n);
        }
        Self::forget_gone(&mut slots);
    }

    /// A worker of several calls is several slots at one address, and its heartbeat says
    /// only how many of them are busy, not which: the first ones. Busy by hearsay is
    /// then what the worker holds beyond this gateway's own calls on it, put on slots
    /// this gateway holds no call on, so the gateway neither counts its own calls twice
    /// nor overlooks the others'.
    fn count_shared_workers(slots: &mut HashMap<SlotId, Slot>, n: &bpb::Node) {
        let mut by_endpoint: HashMap<&str, Vec<&bpb::WorkerSlot>> = HashMap::new();
        for w in &n.workers {
            by_endpoint.entry(w.endpoint.as_str()).or_default().push(w);
        }
        for group in by_endpoint.values().filter(|g| g.len() > 1) {
            let busy = |w: &&&bpb::WorkerSlot| {
                matches!(WorkerState::try_from(w.state), Ok(WorkerState::InCall | WorkerState::Reserved))
            };
            let reported = group.iter().filter(busy).count() as u32;
            let mut ids: Vec<SlotId> =
                group.iter().map(|w| SlotId::Worker { node_id: n.id.clone(), index: w.index }).collect();
            ids.sort_unstable();
            let held: u32 = ids.iter().filter_map(|id| slots.get(id)).map(|s| s.in_flight).sum();
            let mut elsewhere = reported.saturating_sub(held);
            for id in &ids {
                let Some(s) = slots.get_mut(id) else { continue };
                s.busy_elsewhere = elsewhere > 0 && s.in_flight == 0;
                if s.busy_elsewhere {
                    elsewhere -= 1;
                }
            }
        }
    }

    /// Applies the polled status of a static worker (None: it did not answer).
    pub fn apply_static(&self, url: &str, client: &WorkerClient, status: Option<&vox_proto::fleet::v1::WorkerStatus>) {
        let mut slots = self.lock();
        let entry = slots
            .entry(SlotId::Static(url.to_string()))
            .or_insert_with(|| Slot::new("", "", 0, url, client.clone(), true));
        entry.present = true;
        match status {
            Some(st) => {
                entry.index = st.worker_index;
                entry.capacity = st.worker_max.max(1);
                entry.accepting = st.state != WorkerState::Draining as i32;
                entry.busy_elsewhere = st.worker_calls > entry.in_flight && entry.in_flight == 0;
                entry.awaiting_stream = st.state == WorkerState::Reserved as i32;
            }
            None => entry.accepting = false,
        }
    }

    pub fn view(&self) -> Vec<SlotView> {
        let slots = self.lock();
        let mut out: Vec<SlotView> = slots
            .values()
            .map(|s| SlotView {
                url: s.endpoint.clone(),
                node_id: s.node_id.clone(),
                region_id: s.region_id.clone(),
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
mod tests;
