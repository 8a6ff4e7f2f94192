//! The live event bus while Redis is frozen: publishing keeps working, the queue stays at
//! its cap (memory bounded), the drops are counted, and once Redis answers again every
//! instance's watchers are told to recompute and new events flow. The Redis server is
//! this test's own (from `bash ops/test.sh`'s install), so it can be stopped with
//! SIGSTOP. Never skips.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use futures::StreamExt;
use vox_store::{ClusterEvent, EventBus};
use vox_store_redis::{PUBLISH_QUEUE_CAP, Redis, RedisEventBus};
use vox_testkit::ServerProcess;

fn signal(p: &ServerProcess, sig: &str) {
    let pid = p.pid().unwrap().to_string();
    assert!(std::process::Command::new("kill").args([sig, &pid]).status().unwrap().success());
}

/// The next item of `events` within `limit`, skipping none.
async fn next_within<S: futures::Stream<Item = Option<ClusterEvent>> + Unpin>(
    events: &mut S,
    limit: Duration,
) -> Option<Option<ClusterEvent>> {
    tokio::time::timeout(limit, events.next()).await.ok().flatten()
}

#[tokio::test]
async fn a_frozen_redis_keeps_the_queue_at_its_cap_and_counts_the_drops() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let redis = vox_testkit::redis_server(port, dir.path()).await;
    let url = format!("redis://127.0.0.1:{port}");
    let prefix = format!("vox-test-{}:", vox_domain::ids::random_token(8));
    let publisher = RedisEventBus::start(Redis::connect(&url, &prefix).await.unwrap()).await;
    let watcher = RedisEventBus::start(Redis::connect(&url, &prefix).await.unwrap()).await;
    let mut events = watcher.subscribe();
    publisher.publish(ClusterEvent::NodeChanged("nd_before".into()));
    assert_eq!(
        next_within(&mut events, Duration::from_secs(10)).await,
        Some(Some(ClusterEvent::NodeChanged("nd_before".into())))
    );

    signal(&redis, "-STOP");
    let started = Instant::now();
    for i in 0..50_000 {
        publisher.publish(ClusterEvent::CallChanged(format!("ca_{i:08}")));
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "publishing never waits for redis: 50,000 events took {took:?}");
    let (queued, dropped) = (publisher.queued(), publisher.dropped());
    println!("redis frozen: 50000 published, {queued} queued (cap {PUBLISH_QUEUE_CAP}), {dropped} dropped");
    assert!(queued <= PUBLISH_QUEUE_CAP, "{queued} queued");
    assert!(queued >= PUBLISH_QUEUE_CAP - 10, "the queue holds the newest events: {queued}");
    // Every event is queued, counted as dropped, or among the few the publisher took
    // before the frozen server stopped answering.
    let taken = 50_000 - queued as u64 - dropped;
    assert!(taken <= 10, "{taken} events neither queued nor counted");
    // Still bounded a moment later, while the publisher waits on the frozen server.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(publisher.queued() <= PUBLISH_QUEUE_CAP);

    signal(&redis, "-CONT");
    // Watchers hear of the loss (a gap marker), then new events flow again.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut gap = false;
    let mut after = false;
    let mut marker_sent = false;
    while Instant::now() < deadline && !(gap && after) {
        if publisher.queued() == 0 && !marker_sent {
            publisher.publish(ClusterEvent::NodeChanged("nd_after".into()));
            marker_sent = true;
        }
        match next_within(&mut events, Duration::from_millis(200)).await {
            Some(None) => gap = true,
            Some(Some(ClusterEvent::NodeChanged(id))) if id == "nd_after" => after = true,
            _ => {}
        }
    }
    assert!(gap, "watchers were told to recompute");
    assert!(after, "events published after the outage arrive");
    assert_eq!(publisher.queued(), 0, "the queue drained once redis answered");
}
