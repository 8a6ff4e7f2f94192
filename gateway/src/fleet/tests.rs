//! The slot choice: spread, regions, refusals, renamed endpoints and reservations.
#![allow(clippy::unwrap_used)]

use super::*;

fn fleet() -> Arc<Fleet> {
    Arc::new(Fleet::new(vox_node::tokens::GatewayCredential::default().interceptor()))
}

fn node_in(id: &str, region: &str, desired: bpb::DesiredState, workers: &[(u32, WorkerState)]) -> bpb::Node {
    bpb::Node {
        id: id.into(),
        kind: bpb::NodeKind::Fleet as i32,
        region_id: region.into(),
        online: true,
        desired_state: desired as i32,
        workers: workers
            .iter()
            .map(|(i, st)| bpb::WorkerSlot {
                index: *i,
                state: *st as i32,
                call_id: String::new(),
                // Every host has the same layout: the endpoint does not name a slot.
                endpoint: format!("http://127.0.0.1:{}", 7100 + i),
            })
            .collect(),
        ..Default::default()
    }
}

fn node(id: &str, desired: bpb::DesiredState, workers: &[(u32, WorkerState)]) -> bpb::Node {
    node_in(id, "rg_1", desired, workers)
}

fn idle(n: u32) -> Vec<(u32, WorkerState)> {
    (1..=n).map(|i| (i, WorkerState::Idle)).collect()
}

#[tokio::test]
async fn claims_spread_and_never_double_book() {
    let fleet = fleet();
    fleet.apply_nodes(&[node("nd_a", bpb::DesiredState::Active, &idle(2))]);
    assert_eq!(fleet.available(), 2);
    let c1 = fleet.claim(&HashSet::new()).unwrap();
    let c2 = fleet.claim(&HashSet::new()).unwrap();
    assert_ne!(c1.slot, c2.slot);
    assert!(fleet.claim(&HashSet::new()).is_none(), "every slot taken");
    drop(c1);
    assert_eq!(fleet.available(), 1);
    assert!(fleet.claim(&HashSet::new()).is_some(), "a freed slot is reused");
}

#[tokio::test]
async fn the_same_endpoint_on_two_nodes_is_two_slots() {
    let fleet = fleet();
    fleet.apply_nodes(&[
        node("nd_a", bpb::DesiredState::Active, &idle(1)),
        node("nd_b", bpb::DesiredState::Active, &idle(1)),
    ]);
    let view = fleet.view();
    assert_eq!(view.len(), 2, "{view:?}");
    assert_eq!(view[0].url, view[1].url, "same layout on both hosts");
    let a = fleet.claim(&HashSet::new()).unwrap();
    let b = fleet.claim(&HashSet::new()).unwrap();
    assert_ne!(a.node_id, b.node_id);
    assert!(fleet.claim(&HashSet::new()).is_none());
}

#[tokio::test]
async fn forty_held_calls_spread_over_two_hosts() {
    let fleet = fleet();
    fleet.apply_nodes(&[
        node("nd_a", bpb::DesiredState::Active, &idle(30)),
        node("nd_b", bpb::DesiredState::Active, &idle(30)),
    ]);
    let held: Vec<Claim> = (0..40).map(|_| fleet.claim(&HashSet::new()).unwrap()).collect();
    let on_a = held.iter().filter(|c| c.node_id == "nd_a").count();
    assert!((16..=24).contains(&on_a), "{on_a} of 40 on one host");
    let distinct: HashSet<&SlotId> = held.iter().map(|c| &c.slot).collect();
    assert_eq!(distinct.len(), 40, "no worker holds two calls");
}

#[tokio::test]
async fn short_calls_take_turns_across_hosts() {
    let fleet = fleet();
    fleet.apply_nodes(&[
        node("nd_a", bpb::DesiredState::Active, &idle(4)),
        node("nd_b", bpb::DesiredState::Active, &idle(4)),
    ]);
    let mut on_a = 0;
    let mut workers = HashSet::new();
    for _ in 0..40 {
        let c = fleet.claim(&HashSet::new()).unwrap();
        on_a += usize::from(c.node_id == "nd_a");
        workers.insert(c.slot.clone());
    }
    assert!((16..=24).contains(&on_a), "{on_a} of 40 sequential calls on one host");
    assert_eq!(workers.len(), 8, "every worker took turns");
}

#[tokio::test]
async fn the_own_region_goes_first_then_the_others() {
    let fleet = fleet();
    fleet.set_region("rg_home");
    fleet.apply_nodes(&[
        node_in("nd_away", "rg_away", bpb::DesiredState::Active, &idle(4)),
        node_in("nd_home", "rg_home", bpb::DesiredState::Active, &idle(2)),
    ]);
    let first = fleet.claim(&HashSet::new()).unwrap();
    let second = fleet.claim(&HashSet::new()).unwrap();
    assert_eq!((first.node_id.as_str(), second.node_id.as_str()), ("nd_home", "nd_home"));
    let third = fleet.claim(&HashSet::new()).unwrap();
    assert_eq!(third.node_id, "nd_away", "the home region is full");
    drop(first);
    assert_eq!(fleet.claim(&HashSet::new()).unwrap().node_id, "nd_home", "home again once free");
}

#[tokio::test]
async fn busy_draining_and_removed_nodes_take_no_new_calls() {
    let fleet = fleet();
    fleet.apply_nodes(&[
        node("nd_a", bpb::DesiredState::Maintenance, &[(1, WorkerState::Idle)]),
        node("nd_bb", bpb::DesiredState::Active, &[(1, WorkerState::InCall), (2, WorkerState::Idle)]),
    ]);
    assert_eq!(fleet.available(), 1, "maintenance and another gateway's call are not free");
    let held = fleet.claim(&HashSet::new()).unwrap();
    assert_eq!(held.node_id, "nd_bb");
    // The node disappears: its live call keeps its slot until it ends.
    fleet.apply_nodes(&[]);
    assert_eq!(fleet.view().len(), 1);
    assert!(fleet.claim(&HashSet::new()).is_none());
    drop(held);
    assert!(fleet.view().is_empty());
}

#[tokio::test]
async fn a_busy_refusal_moves_on_to_the_next_slot() {
    let fleet = fleet();
    fleet.apply_nodes(&[node("nd_a", bpb::DesiredState::Active, &idle(2))]);
    let first = fleet.claim(&HashSet::new()).unwrap();
    fleet.refused(&first.slot, Refusal::Busy);
    let tried: HashSet<SlotId> = [first.slot.clone()].into();
    drop(first);
    let next = fleet.claim(&tried).unwrap();
    assert!(!tried.contains(&next.slot));
}

#[tokio::test]
async fn a_worker_on_a_new_port_keeps_its_slot() {
    let fleet = fleet();
    fleet.apply_nodes(&[node("nd_a", bpb::DesiredState::Active, &idle(1))]);
    let held = fleet.claim(&HashSet::new()).unwrap();
    let mut moved = node("nd_a", bpb::DesiredState::Active, &idle(1));
    moved.workers[0].endpoint = "http://127.0.0.1:9999".into();
    fleet.apply_nodes(&[moved]);
    let view = fleet.view();
    assert_eq!((view.len(), view[0].url.as_str(), view[0].worker_calls), (1, "http://127.0.0.1:9999", 1));
    drop(held);
    assert_eq!(fleet.claim(&HashSet::new()).unwrap().endpoint, "http://127.0.0.1:9999");
}

#[tokio::test]
async fn a_reserved_slot_is_claimed_by_name() {
    let fleet = fleet();
    fleet.apply_nodes(&[node("nd_a", bpb::DesiredState::Active, &[(1, WorkerState::Reserved)])]);
    assert_eq!(fleet.available(), 0, "reserved by another gateway");
    assert!(fleet.awaiting_streams());
    let id = SlotId::Worker { node_id: "nd_a".into(), index: 1 };
    let held = fleet.claim_reserved(&id).unwrap();
    assert!(fleet.claim_reserved(&id).is_none(), "one call per slot on this gateway");
    assert!(fleet.claim(&HashSet::new()).is_none(), "a slot this gateway holds is never claimed twice");
    drop(held);
    let unknown = SlotId::Worker { node_id: "nd_a".into(), index: 2 };
    assert!(fleet.claim_reserved(&unknown).is_none());
}

#[tokio::test]
async fn a_slot_busy_only_by_hearsay_is_asked_rather_than_a_call_turned_away() {
    let fleet = fleet();
    // Another gateway's calls, as the last heartbeat saw them; they may have ended since.
    fleet.apply_nodes(&[node("nd_a", bpb::DesiredState::Active, &[(1, WorkerState::InCall), (2, WorkerState::Idle)])]);
    let own = fleet.claim(&HashSet::new()).unwrap();
    assert_eq!(own.index, 2, "a free slot first");
    let hearsay = fleet.claim(&HashSet::new()).expect("nothing free: the worker busy by hearsay is asked");
    assert_eq!(hearsay.index, 1);
    // The worker said RESOURCE_EXHAUSTED: the caller moves on and finds nothing else.
    fleet.refused(&hearsay.slot, Refusal::Busy);
    let tried: HashSet<SlotId> = [hearsay.slot.clone()].into();
    drop(hearsay);
    assert!(fleet.claim(&tried).is_none(), "every slot asked");
    // Draining workers are never asked.
    drop(own);
    fleet.apply_nodes(&[node("nd_a", bpb::DesiredState::Maintenance, &[(1, WorkerState::InCall)])]);
    assert!(fleet.claim(&HashSet::new()).is_none());
}

/// A worker of four calls is four slots, and its heartbeat says how many are busy, not
/// which: the gateway's own calls on it are not counted twice, another gateway's are.
#[tokio::test]
async fn a_shared_workers_busy_slots_are_counted_once() {
    let fleet = fleet();
    let shared = |busy: u32| {
        let mut n = node(
            "nd_a",
            bpb::DesiredState::Active,
            &(1..=4).map(|i| (i, if i <= busy { WorkerState::InCall } else { WorkerState::Idle })).collect::<Vec<_>>(),
        );
        for w in &mut n.workers {
            w.endpoint = "unix:///run/vox/voxcore_1.sock".into();
        }
        n
    };
    fleet.apply_nodes(&[shared(0)]);
    assert_eq!((fleet.available(), fleet.total()), (4, 4));
    let held: Vec<Claim> = (0..2).map(|_| fleet.claim(&HashSet::new()).unwrap()).collect();
    // The worker reports this gateway's two calls, on whichever of its slots.
    fleet.apply_nodes(&[shared(2)]);
    assert_eq!(fleet.available(), 2, "two slots left, not zero: {:?}", fleet.view());
    // Another gateway places a third call there.
    fleet.apply_nodes(&[shared(3)]);
    assert_eq!(fleet.available(), 1, "{:?}", fleet.view());
    drop(held);
    fleet.apply_nodes(&[shared(1)]);
    assert_eq!(fleet.available(), 3, "only the other gateway's call is left: {:?}", fleet.view());
}
