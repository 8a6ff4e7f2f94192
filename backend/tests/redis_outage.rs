//! Redis killed and started again while nodes heartbeat to two voxbridge instances on
//! MongoDB + Redis: the node flaps offline at most once, no record is lost (Redis holds
//! none), and presence and live events work again without restarting voxbridge. The
//! Redis server is this test's own, so it can be killed; MongoDB comes from
//! `bash ops/test.sh`. Never skips.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::authed;
use tokio_stream::StreamExt;
use vox_proto::backend::v1 as pb;

fn heartbeat(node_id: &str, boot: &str) -> pb::HeartbeatRequest {
    pb::HeartbeatRequest {
        node_id: node_id.into(),
        boot_id: boot.into(),
        version: "0.1.0".into(),
        workers: vec![pb::WorkerSlot {
            index: 1,
            state: vox_proto::common::v1::WorkerState::Idle as i32,
            call_id: String::new(),
            endpoint: "unix:///run/vox/voxcore_1.sock".into(),
        }],
        ..Default::default()
    }
}

#[tokio::test]
async fn a_redis_restart_under_heartbeats_loses_nothing_and_heals_by_itself() {
    let mongo = std::env::var("VOX_TEST_MONGO_URL").unwrap_or_else(|_| {
        panic!("set VOX_TEST_MONGO_URL or run bash ops/test.sh, which starts a server (these tests never skip)")
    });
    let logs = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut redis = vox_testkit::redis_server(port, logs.path()).await;
    let redis_url = format!("redis://127.0.0.1:{port}");
    let database = format!("vox_redis_outage_{}", vox_domain::ids::random_token(8));
    let args = [
        "--store",
        mongo.as_str(),
        "--store-database",
        database.as_str(),
        "--redis",
        redis_url.as_str(),
        "--jwt-secret",
        "a shared jwt secret for both instances, 32+ bytes",
        "--master-key",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    ];
    let a = common::start(&args).await;
    let b = common::start(&args).await;
    let region = a.create_region("us-east-1").await;
    let (node, secret) = a.register(pb::NodeKind::Fleet, &region.id).await;
    let campaign = a
        .campaigns()
        .create_campaign(authed(&a.admin, pb::CreateCampaignRequest { spec: Some(common::campaign_spec(&region.id)) }))
        .await
        .unwrap()
        .into_inner();

    // The node heartbeats to A every 300 ms, as voxcore would, whatever the answer.
    let stop = Arc::new(AtomicBool::new(false));
    let failed_beats = Arc::new(AtomicU32::new(0));
    let beats = {
        let (channel, stop, failed, node_id, secret) =
            (a.channel.clone(), stop.clone(), failed_beats.clone(), node.id.clone(), secret.clone());
        tokio::spawn(async move {
            let mut nodes = pb::node_service_client::NodeServiceClient::new(channel);
            while !stop.load(Ordering::Relaxed) {
                if nodes.heartbeat(authed(&secret, heartbeat(&node_id, "boot-1"))).await.is_err() {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    // B samples whether the node is online every 100 ms (an error counts as not online).
    let samples = Arc::new(std::sync::Mutex::new(Vec::<bool>::new()));
    let watcher = {
        let (channel, stop, samples, admin, id) =
            (b.channel.clone(), stop.clone(), samples.clone(), b.admin.clone(), node.id.clone());
        tokio::spawn(async move {
            let mut nodes = pb::node_service_client::NodeServiceClient::new(channel);
            while !stop.load(Ordering::Relaxed) {
                let online = nodes
                    .get_node(authed(&admin, pb::GetNodeRequest { id: id.clone() }))
                    .await
                    .map(|r| r.into_inner().online)
                    .unwrap_or(false);
                samples.lock().unwrap().push(online);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let online_on_b = async || b.node(&node.id).await.online;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !online_on_b().await {
        assert!(Instant::now() < deadline, "the node never came online");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Redis dies for three seconds, and comes back empty.
    redis.kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _redis = vox_testkit::redis_server(port, logs.path()).await;
    let back = Instant::now();
    let deadline = back + Duration::from_secs(15);
    while !online_on_b().await {
        assert!(Instant::now() < deadline, "the node is not online again 15 s after Redis came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "online again {:?} after Redis came back; {} heartbeats failed meanwhile",
        back.elapsed(),
        failed_beats.load(Ordering::Relaxed)
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    beats.await.unwrap();
    watcher.await.unwrap();

    let samples = samples.lock().unwrap().clone();
    let flaps = samples.windows(2).filter(|w| w[0] && !w[1]).count();
    assert!(flaps <= 1, "the node flapped {flaps} times: {samples:?}");
    assert!(samples.last() == Some(&true), "online at the end: {samples:?}");

    // Nothing was lost: both instances still see every record.
    for bridge in [&a, &b] {
        let regions =
            bridge.regions().list_regions(authed(&bridge.admin, pb::ListRegionsRequest {})).await.unwrap().into_inner();
        assert_eq!(regions.regions.len(), 1);
        let nodes = bridge
            .nodes()
            .list_nodes(authed(&bridge.admin, pb::ListNodesRequest::default()))
            .await
            .unwrap()
            .into_inner();
        assert!(nodes.nodes.iter().any(|n| n.id == node.id));
        bridge
            .campaigns()
            .get_campaign(authed(&bridge.admin, pb::GetCampaignRequest { id: campaign.id.clone() }))
            .await
            .unwrap();
    }

    // Live events cross instances again: a node heartbeating through A reaches a
    // dashboard watch on B through Redis pub/sub, which reconnected by itself.
    let mut watch = b
        .dashboard()
        .watch_dashboard(authed(&b.admin, pb::WatchDashboardRequest { min_interval_ms: 100, max_interval_ms: 60_000 }))
        .await
        .unwrap()
        .into_inner();
    let first = watch.next().await.unwrap().unwrap();
    let online_before = first.capacity.unwrap().fleet_nodes_online;
    let (n2, s2) = a.register(pb::NodeKind::Fleet, &region.id).await;
    a.heartbeat(&n2.id, &s2, "boot", 1).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let d = watch.next().await.unwrap().unwrap();
            if d.capacity.unwrap().fleet_nodes_online == online_before + 1 {
                return;
            }
        }
    })
    .await
    .expect("a change made through A reaches B's watch after the Redis restart");
}
