//! Two voxbridge instances on one MongoDB and one Redis behave as one control plane:
//! presence and live events cross instances through Redis, lifecycle through MongoDB.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::authed;
use tokio_stream::StreamExt;
use vox_proto::backend::v1 as pb;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("set {name} or run bash ops/test.sh, which starts the servers (these tests never skip)")
    })
}

#[tokio::test]
async fn two_instances_on_mongodb_and_redis_are_one_control_plane() {
    let mongo = env("VOX_TEST_MONGO_URL");
    let redis = env("VOX_TEST_REDIS_URL");
    let database = format!("vox_cluster_{}", vox_domain::ids::random_token(8));
    let args = [
        "--store",
        mongo.as_str(),
        "--store-database",
        database.as_str(),
        "--redis",
        redis.as_str(),
        "--jwt-secret",
        "a shared jwt secret for both instances, 32+ bytes",
        "--master-key",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    ];
    let a = common::start(&args).await;
    let b = common::start(&args).await;

    let region = a.create_region("us-east-1").await;
    let (n1, s1) = a.register(pb::NodeKind::Fleet, &region.id).await;
    // B sees what A wrote, and a heartbeat to B is presence A sees.
    assert_eq!(
        b.regions().list_regions(authed(&b.admin, pb::ListRegionsRequest {})).await.unwrap().into_inner().regions.len(),
        1
    );
    b.heartbeat(&n1.id, &s1, "boot", 2).await.unwrap();
    assert!(a.node(&n1.id).await.online, "presence crosses instances");

    // A dashboard watch on B hears about a node that heartbeats through A.
    let mut watch = b
        .dashboard()
        .watch_dashboard(authed(&b.admin, pb::WatchDashboardRequest { min_interval_ms: 100, max_interval_ms: 60_000 }))
        .await
        .unwrap()
        .into_inner();
    let first = watch.next().await.unwrap().unwrap();
    assert_eq!(first.capacity.unwrap().fleet_nodes_online, 1);
    let (n2, s2) = a.register(pb::NodeKind::Fleet, &region.id).await;
    a.heartbeat(&n2.id, &s2, "boot", 3).await.unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let d = watch.next().await.unwrap().unwrap();
            if d.capacity.unwrap().fleet_nodes_online == 2 {
                return d;
            }
        }
    })
    .await
    .expect("the change made through A reaches B's watch through Redis, well before B's 60 s refresh");
    assert_eq!(seen.capacity.unwrap().worker_slots_total, 5);

    // A drain set on B is in the next heartbeat reply from A.
    let drain = pb::SetNodeLifecycleRequest {
        node_id: n1.id.clone(),
        action: pb::LifecycleAction::Maintenance as i32,
        reason: "rolling update".into(),
    };
    b.nodes().set_node_lifecycle(authed(&b.admin, drain)).await.unwrap();
    assert_eq!(a.heartbeat(&n1.id, &s1, "boot", 2).await.unwrap().desired_state(), pb::DesiredState::Maintenance);

    // Both instances report the same figures.
    let da = a.dashboard().get_dashboard(authed(&a.admin, pb::GetDashboardRequest {})).await.unwrap().into_inner();
    let db = b.dashboard().get_dashboard(authed(&b.admin, pb::GetDashboardRequest {})).await.unwrap().into_inner();
    assert_eq!((da.capacity, da.live, da.pipeline), (db.capacity, db.live, db.pipeline));
}
