//! Exactly one active dialler: a killed leader is replaced within the lease TTL, and a
//! frozen leader that wakes up after losing the lease neither leases nor places a call.
#![allow(clippy::unwrap_used, reason = "tests stop on failure")]

mod common;

use std::time::{Duration, Instant};

use common::{Platform, Settings, assert_no_double_dials, now, platform, secs, signal, until};
use vox_proto::backend::v1 as bpb;

/// The TTL the test diallers run with (`--leadership-ttl-seconds`).
const TTL: Duration = Duration::from_secs(4);

fn two_diallers() -> Settings {
    Settings { diallers: 2, ..Settings::default() }
}

async fn leader_index(p: &Platform) -> usize {
    let (holder, _) = until("a leader", Duration::from_secs(20), async || {
        let l = p.leader().await;
        (!l.0.is_empty()).then_some(l)
    })
    .await;
    p.diallers.iter().position(|d| d.node_id == holder).unwrap()
}

/// Waits until the carrier saw at least `n` calls.
async fn until_placed(p: &Platform, n: usize) {
    until("calls placed", Duration::from_secs(60), async || (p.carrier_calls().await.len() >= n).then_some(())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leader_is_replaced_and_its_unplaced_leases_return_to_pending() {
    let mut p = platform(two_diallers()).await;
    // 3 calls a second: leases wait in the rate limiter, so some are leased, not placed.
    let id = p.campaign(80, 40, 3).await;
    let old = leader_index(&p).await;
    let (_, old_term) = p.leader().await;
    until_placed(&p, 10).await;

    let leased: Vec<bpb::Call> = p
        .all_calls(&id)
        .await
        .into_iter()
        .filter(|c| c.state() == bpb::CallState::Leased)
        .filter(|c| c.lease.as_ref().is_some_and(|l| l.owner == p.diallers[old].node_id))
        .collect();
    p.diallers[old].process.kill();
    let killed = Instant::now();
    let new_id = p.diallers[1 - old].node_id.clone();
    let term = until("the standby to lead", Duration::from_secs(20), async || {
        let (holder, term) = p.leader().await;
        (holder == new_id).then_some(term)
    })
    .await;
    let took = killed.elapsed();
    assert!(term > old_term, "the new leader has a higher term: {term} > {old_term}");
    // The lease runs out TTL after the last renewal; the standby asks every TTL/5.
    assert!(took <= TTL + TTL / 5 + Duration::from_secs(1), "took over in {took:?}");
    println!("standby took over {took:?} after kill -9 (TTL {TTL:?})");

    p.until_done(&id, Duration::from_secs(180)).await;
    let carrier = p.carrier_calls().await;
    assert_no_double_dials(&carrier);
    let mut returned = 0;
    for c in &leased {
        let events = p.events(&c.id).await;
        let placed_by_old = events
            .iter()
            .any(|e| e.to_state() == bpb::CallState::Dialing && e.actor == format!("node:{}", p.diallers[old].node_id));
        if !placed_by_old {
            assert!(
                events.iter().any(|e| e.to_state() == bpb::CallState::Pending && e.reason == "lease_expired"),
                "{} was leased by the dead leader and never placed: it went back to pending ({events:?})",
                c.id
            );
            returned += 1;
        }
    }
    println!("{} calls leased by the killed leader, {returned} never placed and returned to pending", leased.len());
    let (code, health) = p.dialler_health(1 - old).await;
    assert_eq!(code, 200, "{health}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_leader_that_wakes_up_places_nothing() {
    let p = platform(two_diallers()).await;
    let id = p.campaign(80, 40, 3).await;
    let old = leader_index(&p).await;
    let old_node = p.diallers[old].node_id.clone();
    let (_, old_term) = p.leader().await;
    until_placed(&p, 8).await;

    let pid = p.diallers[old].process.pid().unwrap();
    signal(pid, "STOP");
    let stopped_at = now() + 0.2;
    let new_id = p.diallers[1 - old].node_id.clone();
    until("the standby to lead", Duration::from_secs(20), async || {
        let (holder, term) = p.leader().await;
        (holder == new_id && term > old_term).then_some(())
    })
    .await;
    // Long enough for the frozen leader's call leases to run out and be dialled by the
    // new leader: exactly the calls a careless waking leader would dial twice.
    tokio::time::sleep(Duration::from_secs(8)).await;
    signal(pid, "CONT");
    until("the woken dialler to know it does not lead", Duration::from_secs(15), async || {
        let (code, h) = p.dialler_health(old).await;
        (code == 503 && h["reason"].as_str().unwrap_or_default().contains("no leadership")).then_some(())
    })
    .await;

    p.until_done(&id, Duration::from_secs(180)).await;
    assert_no_double_dials(&p.carrier_calls().await);
    // Nothing the frozen dialler did after it froze reached voxbridge.
    let actor = format!("node:{old_node}");
    for c in p.all_calls(&id).await {
        for e in p.events(&c.id).await {
            assert!(
                !(e.actor == actor && secs(&e.at) > stopped_at),
                "the frozen leader moved {} to {:?} after it woke up",
                c.id,
                e.to_state()
            );
        }
    }
    let m = p.dialler_metrics(old).await;
    assert_eq!(m.get("voxdialler_leader").copied(), Some(0.0), "the woken dialler reports itself a standby");
}
