//! voxbridge as an operator meets it: a real process on loopback, driven through its gRPC
//! API with real clients.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{ADMIN_EMAIL, ADMIN_PASSWORD, authed, campaign_spec, storage};
use tokio_stream::StreamExt;
use tonic::Code;
use vox_proto::backend::v1 as pb;

#[tokio::test]
async fn regions_nodes_heartbeats_and_lifecycle() {
    let b = common::start(&["--node-staleness-seconds", "2", "--heartbeat-interval-ms", "500"]).await;
    let region = b.create_region("us-east-1").await;
    assert_eq!(region.country, "US");
    assert!(region.storage.as_ref().unwrap().secret_key_set);

    let (node, secret) = b.register(pb::NodeKind::Fleet, &region.id).await;
    assert_eq!(node.sip_port, 5080, "fleet nodes default to SIP port 5080");
    assert!(secret.starts_with(&format!("vxn.{}.", node.id)));
    assert!(!b.node(&node.id).await.online, "registered but not heartbeating");
    let dash = b.dashboard().get_dashboard(authed(&b.admin, pb::GetDashboardRequest {})).await.unwrap().into_inner();
    let cap = dash.capacity.unwrap();
    assert_eq!((cap.fleet_nodes_online, cap.fleet_nodes_total), (0, 1), "the seed's 0/N case");

    let reply = b.heartbeat(&node.id, &secret, "boot-1", 2).await.unwrap();
    assert_eq!(reply.desired_state(), pb::DesiredState::Active);
    assert_eq!(reply.region_id, region.id);
    let seen = b.node(&node.id).await;
    assert!(seen.online);
    assert_eq!((seen.version.as_str(), seen.workers.len()), ("0.1.0", 2));
    let cap = b
        .dashboard()
        .get_dashboard(authed(&b.admin, pb::GetDashboardRequest {}))
        .await
        .unwrap()
        .into_inner()
        .capacity
        .unwrap();
    assert_eq!((cap.fleet_nodes_online, cap.worker_slots_free, cap.worker_slots_total), (1, 2, 2));

    // Drain: the heartbeat reply carries maintenance; the slots stop counting as free.
    let lifecycle = |action: pb::LifecycleAction, reason: &str| pb::SetNodeLifecycleRequest {
        node_id: node.id.clone(),
        action: action as i32,
        reason: reason.into(),
    };
    let drained = b
        .nodes()
        .set_node_lifecycle(authed(&b.admin, lifecycle(pb::LifecycleAction::Maintenance, "kernel update")))
        .await
        .unwrap();
    assert_eq!(drained.into_inner().desired_state(), pb::DesiredState::Maintenance);
    assert_eq!(
        b.heartbeat(&node.id, &secret, "boot-1", 2).await.unwrap().desired_state(),
        pb::DesiredState::Maintenance
    );
    let cap = b
        .dashboard()
        .get_dashboard(authed(&b.admin, pb::GetDashboardRequest {}))
        .await
        .unwrap()
        .into_inner()
        .capacity
        .unwrap();
    assert_eq!((cap.worker_slots_free, cap.worker_slots_total), (0, 2));
    b.nodes()
        .set_node_lifecycle(authed(&b.admin, lifecycle(pb::LifecycleAction::Resume, "update done")))
        .await
        .unwrap();
    assert_eq!(b.heartbeat(&node.id, &secret, "boot-1", 2).await.unwrap().desired_state(), pb::DesiredState::Active);

    // Shutdown lasts until the node comes back with a new boot id.
    b.nodes()
        .set_node_lifecycle(authed(&b.admin, lifecycle(pb::LifecycleAction::Shutdown, "restart for config")))
        .await
        .unwrap();
    assert_eq!(b.heartbeat(&node.id, &secret, "boot-1", 2).await.unwrap().desired_state(), pb::DesiredState::Shutdown);
    assert_eq!(b.heartbeat(&node.id, &secret, "boot-2", 2).await.unwrap().desired_state(), pb::DesiredState::Active);

    let audit = b
        .nodes()
        .list_audit_events(authed(&b.admin, pb::ListAuditEventsRequest { target_id: node.id.clone(), limit: 0 }))
        .await
        .unwrap()
        .into_inner()
        .events;
    let actions: Vec<&str> = audit.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(
        actions,
        ["node.shutdown.completed", "node.shutdown", "node.resume", "node.maintenance", "node.register"]
    );
    let maintenance = &audit[3];
    assert_eq!((maintenance.actor.as_str(), maintenance.reason.as_str()), ("user:admin@vox.test", "kernel update"));
    assert!(maintenance.at.is_some());

    // No heartbeat for longer than the staleness window: offline.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert!(!b.node(&node.id).await.online);

    // Disabled is permanent: heartbeats are refused and resume is refused.
    b.nodes()
        .set_node_lifecycle(authed(&b.admin, lifecycle(pb::LifecycleAction::Disable, "decommissioned")))
        .await
        .unwrap();
    let refused = b.heartbeat(&node.id, &secret, "boot-2", 2).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let err = b
        .nodes()
        .set_node_lifecycle(authed(&b.admin, lifecycle(pb::LifecycleAction::Resume, "oops")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(!b.node(&node.id).await.online);
}

#[tokio::test]
async fn node_secrets_are_checked_and_nodes_act_only_as_themselves() {
    let b = common::start(&[]).await;
    let region = b.create_region("eu-west-1").await;
    let (a, a_secret) = b.register(pb::NodeKind::Fleet, &region.id).await;
    let (g, g_secret) = b.register(pb::NodeKind::Gateway, &region.id).await;
    assert_eq!(g.sip_port, 5060, "gateways default to SIP port 5060");

    // The real secret with its last character changed (to one it is not).
    let last = if a_secret.ends_with('x') { 'y' } else { 'x' };
    let forged = format!("{}{last}", &a_secret[..a_secret.len() - 1]);
    assert_eq!(b.heartbeat(&a.id, &forged, "boot", 1).await.unwrap_err().code(), Code::Unauthenticated);
    assert_eq!(b.heartbeat(&a.id, "not a secret", "boot", 1).await.unwrap_err().code(), Code::Unauthenticated);
    let as_other = b.heartbeat(&a.id, &g_secret, "boot", 0).await.unwrap_err();
    assert_eq!(as_other.code(), Code::PermissionDenied);
    assert!(as_other.message().contains("only heartbeat as itself"), "{}", as_other.message());
    assert_eq!(b.heartbeat(&a.id, &b.admin, "boot", 1).await.unwrap_err().code(), Code::PermissionDenied);
    let no_auth =
        b.nodes().heartbeat(pb::HeartbeatRequest { node_id: a.id.clone(), ..Default::default() }).await.unwrap_err();
    assert_eq!(no_auth.code(), Code::Unauthenticated);
    assert!(!b.node(&a.id).await.online, "refused heartbeats change nothing");

    // A node secret is no user token: it cannot register nodes.
    let req = pb::RegisterNodeRequest {
        kind: pb::NodeKind::Fleet as i32,
        region_id: region.id.clone(),
        endpoint: "http://x:1".into(),
        ..Default::default()
    };
    assert_eq!(b.nodes().register_node(authed(&a_secret, req)).await.unwrap_err().code(), Code::PermissionDenied);

    let rotated = b
        .nodes()
        .rotate_node_secret(authed(&b.admin, pb::RotateNodeSecretRequest { id: a.id.clone() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        b.heartbeat(&a.id, &a_secret, "boot", 1).await.unwrap_err().code(),
        Code::Unauthenticated,
        "the old secret stops working"
    );
    b.heartbeat(&a.id, &rotated.api_secret, "boot", 1).await.unwrap();
    assert!(b.node(&a.id).await.online);
}

#[tokio::test]
async fn roles_limit_what_users_may_do() {
    let b = common::start(&[]).await;
    let region = b.create_region("ap-south-1").await;
    let (node, _) = b.register(pb::NodeKind::Fleet, &region.id).await;
    let viewer = b.user("viewer@vox.test", pb::Role::Viewer).await;
    let operator = b.user("operator@vox.test", pb::Role::Operator).await;

    assert_eq!(
        b.regions().list_regions(authed(&viewer, pb::ListRegionsRequest {})).await.unwrap().into_inner().regions.len(),
        1
    );
    let create = pb::CreateRegionRequest { name: "nope".into(), country: "US".into(), storage: None };
    let err = b.regions().create_region(authed(&viewer, create.clone())).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("admin"), "{}", err.message());
    assert_eq!(b.regions().create_region(authed(&operator, create)).await.unwrap_err().code(), Code::PermissionDenied);

    let drain = pb::SetNodeLifecycleRequest {
        node_id: node.id.clone(),
        action: pb::LifecycleAction::Maintenance as i32,
        reason: "test".into(),
    };
    assert_eq!(
        b.nodes().set_node_lifecycle(authed(&viewer, drain.clone())).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    b.nodes().set_node_lifecycle(authed(&operator, drain)).await.unwrap();
    assert_eq!(
        b.users().list_users(authed(&operator, pb::ListUsersRequest {})).await.unwrap_err().code(),
        Code::PermissionDenied
    );

    // A disabled user's token stops working at once.
    let users = b.users().list_users(authed(&b.admin, pb::ListUsersRequest {})).await.unwrap().into_inner().users;
    let v = users.iter().find(|u| u.email == "viewer@vox.test").unwrap();
    b.users()
        .update_user(authed(
            &b.admin,
            pb::UpdateUserRequest { id: v.id.clone(), disabled: Some(true), ..Default::default() },
        ))
        .await
        .unwrap();
    assert_eq!(
        b.regions().list_regions(authed(&viewer, pb::ListRegionsRequest {})).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    let err = common::login(&b.channel, "viewer@vox.test", "a long enough password").await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(
        common::login(&b.channel, ADMIN_EMAIL, "wrong password!!").await.unwrap_err().message(),
        "wrong email or password"
    );
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let b = common::start(&[]).await;
    let bad_country =
        pb::CreateRegionRequest { name: "us-east-1".into(), country: "United States".into(), storage: None };
    let err = b.regions().create_region(authed(&b.admin, bad_country)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("country:"), "{}", err.message());
    let bad_bucket = pb::CreateRegionRequest {
        name: "us-east-1".into(),
        country: "US".into(),
        storage: Some(pb::RegionStorageInput { bucket: "Bad_Bucket".into(), ..storage("k") }),
    };
    let err = b.regions().create_region(authed(&b.admin, bad_bucket)).await.unwrap_err();
    assert!(err.message().starts_with("storage.bucket:"), "{}", err.message());
    assert!(
        b.regions()
            .list_regions(authed(&b.admin, pb::ListRegionsRequest {}))
            .await
            .unwrap()
            .into_inner()
            .regions
            .is_empty()
    );

    let region = b.create_region("us-east-1").await;
    let dup = pb::CreateRegionRequest { name: "us-east-1".into(), country: "US".into(), storage: None };
    assert_eq!(b.regions().create_region(authed(&b.admin, dup)).await.unwrap_err().code(), Code::AlreadyExists);

    let no_region = pb::RegisterNodeRequest {
        kind: pb::NodeKind::Fleet as i32,
        region_id: "rg_nothere".into(),
        endpoint: "http://x:1".into(),
        ..Default::default()
    };
    let err = b.nodes().register_node(authed(&b.admin, no_region)).await.unwrap_err();
    assert!(err.message().starts_with("region_id:"), "{}", err.message());
    let bad_endpoint = pb::RegisterNodeRequest {
        kind: pb::NodeKind::Fleet as i32,
        region_id: region.id.clone(),
        endpoint: "10.0.0.5:5002".into(),
        ..Default::default()
    };
    let err = b.nodes().register_node(authed(&b.admin, bad_endpoint)).await.unwrap_err();
    assert!(err.message().starts_with("endpoint:"), "{}", err.message());
    assert!(
        b.nodes()
            .list_nodes(authed(&b.admin, pb::ListNodesRequest::default()))
            .await
            .unwrap()
            .into_inner()
            .nodes
            .is_empty()
    );

    let (node, secret) = b.register(pb::NodeKind::Fleet, &region.id).await;
    let dup_slots = pb::HeartbeatRequest {
        node_id: node.id.clone(),
        boot_id: "b".into(),
        workers: vec![
            pb::WorkerSlot { index: 1, state: 1, ..Default::default() },
            pb::WorkerSlot { index: 1, state: 1, ..Default::default() },
        ],
        ..Default::default()
    };
    let err = b.nodes().heartbeat(authed(&secret, dup_slots)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("workers[1].index:"), "{}", err.message());
    assert!(!b.node(&node.id).await.online);

    let mut spec = campaign_spec(&region.id);
    spec.window.as_mut().unwrap().time_zone = "Atlantis/Capital".into();
    let err = b
        .campaigns()
        .create_campaign(authed(&b.admin, pb::CreateCampaignRequest { spec: Some(spec) }))
        .await
        .unwrap_err();
    assert!(err.message().starts_with("spec.window.time_zone:"), "{}", err.message());
    let campaign = b
        .campaigns()
        .create_campaign(authed(&b.admin, pb::CreateCampaignRequest { spec: Some(campaign_spec(&region.id)) }))
        .await
        .unwrap()
        .into_inner();
    let upload = pb::AddNumbersRequest {
        campaign_id: campaign.id.clone(),
        numbers: vec!["+14155550101".into(), "555-0102".into(), "+14155550101".into(), "+1 415 555 0103".into()],
    };
    let added = b.campaigns().add_numbers(authed(&b.admin, upload)).await.unwrap().into_inner();
    assert_eq!(added.accepted, 2);
    let rows: Vec<(u32, &str)> = added.rejected.iter().map(|r| (r.row, r.reason.as_str())).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].0, 2);
    assert!(rows[0].1.contains("no leading '+'"), "{}", rows[0].1);
    assert_eq!(rows[1], (3, "duplicate of row 1"));

    let bad_token = pb::ListCallsRequest { page_token: "garbage".into(), ..Default::default() };
    let err = b.calls().list_calls(authed(&b.admin, bad_token)).await.unwrap_err();
    assert!(err.message().starts_with("page_token:"), "{}", err.message());
    let err = b
        .nodes()
        .set_node_lifecycle(authed(
            &b.admin,
            pb::SetNodeLifecycleRequest { node_id: node.id.clone(), action: 99, reason: "x".into() },
        ))
        .await
        .unwrap_err();
    assert!(err.message().starts_with("action:"), "{}", err.message());
}

#[tokio::test]
async fn calls_follow_the_state_machine_and_fencing_over_grpc() {
    let b = common::start(&["--stale-dialing-seconds", "1"]).await;
    let region = b.create_region("us-east-1").await;
    let (d1, d1_secret) = b.register(pb::NodeKind::Dialler, "").await;
    let (d2, d2_secret) = b.register(pb::NodeKind::Dialler, "").await;
    let campaign = b
        .campaigns()
        .create_campaign(authed(&b.admin, pb::CreateCampaignRequest { spec: Some(campaign_spec(&region.id)) }))
        .await
        .unwrap()
        .into_inner();
    let numbers = (0..4).map(|i| format!("+1415555020{i}")).collect();
    b.campaigns()
        .add_numbers(authed(&b.admin, pb::AddNumbersRequest { campaign_id: campaign.id.clone(), numbers }))
        .await
        .unwrap();
    b.campaigns()
        .start_campaign(authed(&b.admin, pb::CampaignActionRequest { id: campaign.id.clone() }))
        .await
        .unwrap();

    let acquire = |holder: &str| pb::AcquireLeadershipRequest { holder_id: holder.into(), ttl_seconds: 30 };
    let lead1 = b.leadership().acquire_leadership(authed(&d1_secret, acquire(&d1.id))).await.unwrap().into_inner();
    assert!(lead1.held_by_caller);
    let standby = b.leadership().acquire_leadership(authed(&d2_secret, acquire(&d2.id))).await.unwrap().into_inner();
    assert!(!standby.held_by_caller);
    assert_eq!(standby.holder_id, d1.id);
    let impostor = b.leadership().acquire_leadership(authed(&d2_secret, acquire(&d1.id))).await.unwrap_err();
    assert_eq!(impostor.code(), Code::PermissionDenied);

    let lease = |term: u64| pb::LeaseCallsRequest {
        campaign_id: campaign.id.clone(),
        max: 2,
        owner: String::new(),
        fencing_term: term,
        lease_ttl_seconds: 60,
    };
    let leased = b.calls().lease_calls(authed(&d1_secret, lease(lead1.term))).await.unwrap().into_inner().calls;
    assert_eq!(leased.len(), 2);
    let call = &leased[0];
    let token = call.lease.as_ref().unwrap().token.clone();
    let move_to = |state: pb::CallState, term: u64, token: &str| pb::TransitionCallRequest {
        call_id: call.id.clone(),
        to_state: state as i32,
        fencing_term: term,
        lease_token: token.into(),
        ..Default::default()
    };

    let illegal = b
        .calls()
        .transition_call(authed(&d1_secret, move_to(pb::CallState::Completed, lead1.term, &token)))
        .await
        .unwrap_err();
    assert_eq!(illegal.code(), Code::FailedPrecondition);
    assert!(illegal.message().contains("leased -> completed"), "{}", illegal.message());
    let no_term =
        b.calls().transition_call(authed(&d1_secret, move_to(pb::CallState::Dialing, 0, &token))).await.unwrap_err();
    assert_eq!(no_term.code(), Code::InvalidArgument);
    let no_token = b
        .calls()
        .transition_call(authed(&d1_secret, move_to(pb::CallState::Dialing, lead1.term, "")))
        .await
        .unwrap_err();
    assert_eq!(no_token.code(), Code::FailedPrecondition);
    let unchanged =
        b.calls().get_call(authed(&b.admin, pb::GetCallRequest { id: call.id.clone() })).await.unwrap().into_inner();
    assert_eq!((unchanged.state(), unchanged.version), (pb::CallState::Leased, call.version));

    // The leader hands over; the old term is refused for leases and transitions.
    b.leadership()
        .release_leadership(authed(
            &d1_secret,
            pb::ReleaseLeadershipRequest { holder_id: d1.id.clone(), term: lead1.term },
        ))
        .await
        .unwrap();
    let lead2 = b.leadership().acquire_leadership(authed(&d2_secret, acquire(&d2.id))).await.unwrap().into_inner();
    assert!(lead2.held_by_caller && lead2.term > lead1.term);
    let stale = b
        .calls()
        .transition_call(authed(&d1_secret, move_to(pb::CallState::Dialing, lead1.term, &token)))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::FailedPrecondition);
    assert!(stale.message().contains("stale fencing term"), "{}", stale.message());
    assert_eq!(
        b.calls().lease_calls(authed(&d1_secret, lease(lead1.term))).await.unwrap_err().code(),
        Code::FailedPrecondition
    );
    // Leasing in someone else's name is refused outright.
    let theft = pb::LeaseCallsRequest { owner: d2.id.clone(), ..lease(lead2.term) };
    assert_eq!(b.calls().lease_calls(authed(&d1_secret, theft)).await.unwrap_err().code(), Code::PermissionDenied);

    // The new leader carries on with the call: its lease token still guards it.
    let dialing = b
        .calls()
        .transition_call(authed(&d2_secret, move_to(pb::CallState::Dialing, lead2.term, &token)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(dialing.state(), pb::CallState::Dialing);

    // Users may cancel, nothing else.
    let other = &leased[1];
    let user_move = pb::TransitionCallRequest {
        call_id: other.id.clone(),
        to_state: pb::CallState::Dialing as i32,
        ..Default::default()
    };
    assert_eq!(
        b.calls().transition_call(authed(&b.admin, user_move)).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    let cancel = pb::TransitionCallRequest {
        call_id: other.id.clone(),
        to_state: pb::CallState::Canceled as i32,
        reason: "customer asked".into(),
        ..Default::default()
    };
    assert_eq!(
        b.calls().transition_call(authed(&b.admin, cancel)).await.unwrap().into_inner().state(),
        pb::CallState::Canceled
    );

    // The dialing call goes stale; "run cleanup now" reaps it once.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let cleanup = b.jobs().run_cleanup(authed(&b.admin, pb::RunCleanupRequest {})).await.unwrap().into_inner();
    assert_eq!(cleanup.total, 1);
    assert_eq!(cleanup.reaped[0].from_state(), pb::CallState::Dialing);
    assert_eq!(b.jobs().run_cleanup(authed(&b.admin, pb::RunCleanupRequest {})).await.unwrap().into_inner().total, 0);
    let events = b
        .calls()
        .list_call_events(authed(&b.admin, pb::ListCallEventsRequest { call_id: call.id.clone() }))
        .await
        .unwrap()
        .into_inner()
        .events;
    let states: Vec<pb::CallState> = events.iter().map(|e| e.to_state()).collect();
    assert_eq!(states, [pb::CallState::Pending, pb::CallState::Leased, pb::CallState::Dialing, pb::CallState::Failed]);
    assert_eq!(events[2].actor, format!("node:{}", d2.id));
    assert_eq!(events[2].fencing_term, lead2.term);
    assert_eq!(events[3].reason, "reaped:stale_dialing");
}

#[tokio::test]
async fn secrets_never_leave_and_never_rest_in_plain_text() {
    let mut b = common::start(&[]).await;
    let marker = "S3-SECRET-MARKER-7f3k9";
    let req =
        pb::CreateRegionRequest { name: "us-east-1".into(), country: "US".into(), storage: Some(storage(marker)) };
    let region = b.regions().create_region(authed(&b.admin, req)).await.unwrap().into_inner();
    let (_, node_secret) = b.register(pb::NodeKind::Fleet, &region.id).await;
    let keep = pb::SetRegionStorageRequest {
        region_id: region.id.clone(),
        storage: Some(pb::RegionStorageInput { secret_key: None, bucket: "other-bucket".into(), ..storage("") }),
    };
    let kept = b.regions().set_region_storage(authed(&b.admin, keep)).await.unwrap().into_inner();
    assert!(kept.storage.as_ref().unwrap().secret_key_set, "omitting the secret keeps the stored one");
    let listed = b.regions().list_regions(authed(&b.admin, pb::ListRegionsRequest {})).await.unwrap().into_inner();
    assert!(!format!("{listed:?}").contains(marker));

    b.process.terminate(Duration::from_secs(10)).unwrap();
    for entry in walk(b.dir.path()) {
        let bytes = std::fs::read(&entry).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(marker), "the storage secret is in plain text in {}", entry.display());
        assert!(!text.contains(&node_secret), "a node secret is in plain text in {}", entry.display());
        assert!(!text.contains(ADMIN_PASSWORD), "the admin password is in plain text in {}", entry.display());
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { out.extend(walk(&path)) } else { out.push(path) }
    }
    out
}

#[tokio::test]
async fn the_dashboard_watch_streams_changes() {
    let b = common::start(&[]).await;
    let region = b.create_region("us-east-1").await;
    let (node, secret) = b.register(pb::NodeKind::Fleet, &region.id).await;
    let mut stream = b
        .dashboard()
        .watch_dashboard(authed(&b.admin, pb::WatchDashboardRequest { min_interval_ms: 100, max_interval_ms: 1000 }))
        .await
        .unwrap()
        .into_inner();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first.capacity.unwrap().fleet_nodes_online, 0);
    b.heartbeat(&node.id, &secret, "boot", 4).await.unwrap();
    let online = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let d = stream.next().await.unwrap().unwrap();
            let cap = d.capacity.unwrap();
            if cap.fleet_nodes_online == 1 {
                return cap;
            }
        }
    })
    .await
    .expect("the watch reports the node online within 5 s");
    assert_eq!((online.worker_slots_free, online.worker_slots_total), (4, 4));
}

#[tokio::test]
async fn health_metrics_and_a_clean_restart_keep_everything() {
    let b = common::start(&[]).await;
    let http = reqwest::Client::new();
    let health = http.get(format!("{}/health", b.process.url())).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let body: serde_json::Value = health.json().await.unwrap();
    assert_eq!(body["status"], "ok");

    let region = b.create_region("us-east-1").await;
    let (node, secret) = b.register(pb::NodeKind::Fleet, &region.id).await;
    b.heartbeat(&node.id, &secret, "boot", 2).await.unwrap();
    let metrics = http.get(format!("{}/metrics", b.process.url())).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"voxbridge_heartbeats_total{kind="fleet"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"voxbridge_nodes_online{kind="fleet"} 1"#), "{metrics}");
    assert!(metrics.contains("voxbridge_worker_slots_total 2"), "{metrics}");
    assert!(metrics.contains(r#"method="/vox.backend.v1.NodeService/Heartbeat",code="Ok""#), "{metrics}");

    let again = b.restart(&[]).await;
    let regions = again
        .regions()
        .list_regions(authed(&again.admin, pb::ListRegionsRequest {}))
        .await
        .unwrap()
        .into_inner()
        .regions;
    assert_eq!(regions.len(), 1);
    assert_eq!(regions[0].id, region.id);
    again.heartbeat(&node.id, &secret, "boot", 2).await.unwrap();
    assert!(!again.process.logs().contains("created the first admin"), "the admin is created once");
}

#[tokio::test]
async fn production_mode_names_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_voxbridge"))
        .args(["--production", "--data-dir"])
        .arg(dir.path())
        .env_remove("VOX_JWT_SECRET")
        .env_remove("VOX_MASTER_KEY")
        .env_remove("VOX_STORE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for missing in ["--store", "--jwt-secret", "--master-key"] {
        assert!(stderr.contains(missing), "{stderr}");
    }
    assert!(!dir.path().join("jwt.secret").exists(), "production mode generates no secrets");
}

#[tokio::test]
async fn identify_names_users_and_nodes() {
    let b = common::start(&[]).await;
    let region = b.create_region("us-east-1").await;
    let (node, secret) = b.register(pb::NodeKind::Dialler, &region.id).await;
    let mut auth = pb::auth_service_client::AuthServiceClient::new(b.channel.clone());
    let me = auth.identify(authed(&b.admin, pb::IdentifyRequest {})).await.unwrap().into_inner();
    assert!(matches!(me.principal, Some(pb::identity::Principal::User(ref u)) if u.email == ADMIN_EMAIL));
    let it = auth.identify(authed(&secret, pb::IdentifyRequest {})).await.unwrap().into_inner();
    let Some(pb::identity::Principal::Node(n)) = it.principal else { panic!("a node: {it:?}") };
    assert_eq!((n.id.as_str(), n.kind), (node.id.as_str(), pb::NodeKind::Dialler as i32));
    assert_eq!(
        auth.identify(authed("vxn.nd_0123456789abcdef.0123456789abcdefghjkmnpqrstvwxyz", pb::IdentifyRequest {}))
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
}
