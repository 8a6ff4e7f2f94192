//! A node's authority is tied to the call it touches (issue 12, item 2), and metric
//! labels come only from methods voxbridge serves (item 1). Each test runs a real
//! voxbridge and fails without its rule: fleet nodes act on their own slots' calls,
//! gateways on their region's calls and slots, diallers under the exact leadership term
//! with the call's lease token; users never see lease tokens; heartbeats carry only
//! well-formed worker endpoints and at most 1024 slots.
#![allow(clippy::unwrap_used)]

mod common;

use common::{authed, campaign_spec};
use tonic::Code;
use vox_proto::backend::v1 as pb;
use vox_proto::common::v1 as cpb;

/// A web call a gateway creates in its own region (answered).
async fn web_call(b: &common::Bridge, gateway_secret: &str) -> pb::Call {
    let req = pb::CreateInboundCallRequest {
        channel: cpb::Channel::Web as i32,
        from_number: "web:test".into(),
        to_number: "web".into(),
        ..Default::default()
    };
    b.calls().create_inbound_call(authed(gateway_secret, req)).await.unwrap().into_inner()
}

fn move_to(call_id: &str, to: pb::CallState) -> pb::TransitionCallRequest {
    pb::TransitionCallRequest { call_id: call_id.into(), to_state: to as i32, ..Default::default() }
}

fn attach_to(call_id: &str, node_id: &str, worker_index: u32) -> pb::TransitionCallRequest {
    pb::TransitionCallRequest { node_id: node_id.into(), worker_index, ..move_to(call_id, pb::CallState::Attaching) }
}

fn recording(call_id: &str) -> pb::SetCallRecordingRequest {
    pb::SetCallRecordingRequest {
        call_id: call_id.into(),
        recording: Some(pb::Recording { key: format!("calls/{call_id}.wav"), duration_ms: 1000, size_bytes: 64 }),
    }
}

async fn get(b: &common::Bridge, token: &str, id: &str) -> pb::Call {
    b.calls().get_call(authed(token, pb::GetCallRequest { id: id.into() })).await.unwrap().into_inner()
}

#[tokio::test]
async fn fleet_nodes_move_and_record_only_calls_on_their_own_slots() {
    let b = common::start(&[]).await;
    let east = b.create_region("us-east-1").await;
    let (_, gateway) = b.register(pb::NodeKind::Gateway, &east.id).await;
    let (a, a_secret) = b.register(pb::NodeKind::Fleet, &east.id).await;
    let (other, other_secret) = b.register(pb::NodeKind::Fleet, &east.id).await;
    let west = b.create_region("us-west-2").await;
    let (_, west_secret) = b.register(pb::NodeKind::Fleet, &west.id).await;

    let call = web_call(&b, &gateway).await;
    // Before any gateway attaches it, the call is on nobody's slot: no fleet node may end
    // it, and only a fleet node of its region may take it onto its own slot.
    let early = b.calls().transition_call(authed(&a_secret, move_to(&call.id, pb::CallState::Failed))).await;
    assert_eq!(early.unwrap_err().code(), Code::PermissionDenied);
    let foreign = b.calls().transition_call(authed(&west_secret, attach_to(&call.id, &a.id, 1))).await;
    assert_eq!(foreign.unwrap_err().code(), Code::PermissionDenied);
    b.calls().transition_call(authed(&gateway, attach_to(&call.id, &a.id, 1))).await.unwrap();

    // A fleet node that takes an unassigned call records its own id, whatever it names.
    let taken = web_call(&b, &gateway).await;
    let took = b.calls().transition_call(authed(&other_secret, attach_to(&taken.id, &a.id, 3))).await.unwrap();
    let took = took.into_inner();
    assert_eq!((took.node_id.as_str(), took.worker_index), (other.id.as_str(), 3));

    // Node B cannot move nor record A's call, even naming A's slot.
    let stolen = pb::TransitionCallRequest { node_id: a.id.clone(), ..move_to(&call.id, pb::CallState::InProgress) };
    let err = b.calls().transition_call(authed(&other_secret, stolen)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{}", err.message());
    let err = b.calls().set_call_recording(authed(&other_secret, recording(&call.id))).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{}", err.message());
    let unchanged = get(&b, &b.admin, &call.id).await;
    assert_eq!((unchanged.state(), unchanged.recording.is_none()), (pb::CallState::Attaching, true));

    // A moves its own call; the slot recorded is A's whatever the request names.
    let reassign =
        pb::TransitionCallRequest { node_id: other.id.clone(), ..move_to(&call.id, pb::CallState::InProgress) };
    let moved = b.calls().transition_call(authed(&a_secret, reassign)).await.unwrap().into_inner();
    assert_eq!((moved.state(), moved.node_id.as_str()), (pb::CallState::InProgress, a.id.as_str()));
    let recorded = b.calls().set_call_recording(authed(&a_secret, recording(&call.id))).await.unwrap().into_inner();
    assert!(recorded.recording.is_some());
}

#[tokio::test]
async fn gateways_act_only_in_their_region() {
    let b = common::start(&[]).await;
    let east = b.create_region("us-east-1").await;
    let west = b.create_region("us-west-2").await;
    let (_, east_gateway) = b.register(pb::NodeKind::Gateway, &east.id).await;
    let (_, west_gateway) = b.register(pb::NodeKind::Gateway, &west.id).await;
    let (east_fleet, _) = b.register(pb::NodeKind::Fleet, &east.id).await;
    let (west_fleet, _) = b.register(pb::NodeKind::Fleet, &west.id).await;
    let (east_dialler, _) = b.register(pb::NodeKind::Dialler, "").await;

    // Creating: an empty region is the gateway's own; another region is refused.
    let call = web_call(&b, &east_gateway).await;
    assert_eq!(call.region_id, east.id);
    let elsewhere = pb::CreateInboundCallRequest {
        channel: cpb::Channel::Web as i32,
        region_id: east.id.clone(),
        from_number: "web:test".into(),
        to_number: "web".into(),
        ..Default::default()
    };
    let err = b.calls().create_inbound_call(authed(&west_gateway, elsewhere.clone())).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{}", err.message());
    let own = pb::CreateInboundCallRequest { region_id: west.id.clone(), ..elsewhere };
    assert_eq!(
        b.calls().create_inbound_call(authed(&west_gateway, own)).await.unwrap().into_inner().region_id,
        west.id
    );

    // Moving: the west gateway cannot touch an east call, not even to its own slots.
    let err = b.calls().transition_call(authed(&west_gateway, attach_to(&call.id, &west_fleet.id, 1))).await;
    assert_eq!(err.unwrap_err().code(), Code::PermissionDenied);
    let err = b.calls().transition_call(authed(&west_gateway, move_to(&call.id, pb::CallState::Abandoned))).await;
    assert_eq!(err.unwrap_err().code(), Code::PermissionDenied);

    // The slot the east gateway names must be a fleet node of the east region.
    for wrong in [&west_fleet.id, &east_dialler.id] {
        let err = b.calls().transition_call(authed(&east_gateway, attach_to(&call.id, wrong, 1))).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{}", err.message());
    }
    let err = b.calls().transition_call(authed(&east_gateway, attach_to(&call.id, "nd_nobody", 1))).await;
    assert_eq!(err.unwrap_err().code(), Code::InvalidArgument);
    assert_eq!(get(&b, &b.admin, &call.id).await.state(), pb::CallState::Answered);

    let attached =
        b.calls().transition_call(authed(&east_gateway, attach_to(&call.id, &east_fleet.id, 2))).await.unwrap();
    let attached = attached.into_inner();
    assert_eq!((attached.node_id.as_str(), attached.worker_index), (east_fleet.id.as_str(), 2));
}

/// A running campaign with `n` numbers in a new region, and two diallers.
struct Dialling {
    campaign_id: String,
    leader: (pb::Node, String),
    standby: (pb::Node, String),
}

async fn dialling(b: &common::Bridge, n: usize) -> Dialling {
    let region = b.create_region("us-east-1").await;
    let leader = b.register(pb::NodeKind::Dialler, "").await;
    let standby = b.register(pb::NodeKind::Dialler, "").await;
    let req = pb::CreateCampaignRequest { spec: Some(campaign_spec(&region.id)) };
    let campaign = b.campaigns().create_campaign(authed(&b.admin, req)).await.unwrap().into_inner();
    let numbers = (0..n).map(|i| format!("+1415555030{i}")).collect();
    let add = pb::AddNumbersRequest { campaign_id: campaign.id.clone(), numbers };
    b.campaigns().add_numbers(authed(&b.admin, add)).await.unwrap();
    b.campaigns()
        .start_campaign(authed(&b.admin, pb::CampaignActionRequest { id: campaign.id.clone() }))
        .await
        .unwrap();
    Dialling { campaign_id: campaign.id, leader, standby }
}

async fn acquire(b: &common::Bridge, (node, secret): &(pb::Node, String)) -> pb::Leadership {
    let req = pb::AcquireLeadershipRequest { holder_id: node.id.clone(), ttl_seconds: 30 };
    b.leadership().acquire_leadership(authed(secret, req)).await.unwrap().into_inner()
}

async fn lease(b: &common::Bridge, d: &Dialling, term: u64, max: u32) -> Vec<pb::Call> {
    let req = pb::LeaseCallsRequest {
        campaign_id: d.campaign_id.clone(),
        max,
        owner: String::new(),
        fencing_term: term,
        lease_ttl_seconds: 60,
    };
    b.calls().lease_calls(authed(&d.leader.1, req)).await.unwrap().into_inner().calls
}

fn fenced(call: &pb::Call, to: pb::CallState, term: u64, token: &str) -> pb::TransitionCallRequest {
    pb::TransitionCallRequest { fencing_term: term, lease_token: token.into(), ..move_to(&call.id, to) }
}

#[tokio::test]
async fn diallers_move_calls_only_under_the_exact_term() {
    let b = common::start(&[]).await;
    let d = dialling(&b, 2).await;
    let old = acquire(&b, &d.leader).await.term;
    let release = pb::ReleaseLeadershipRequest { holder_id: d.leader.0.id.clone(), term: old };
    b.leadership().release_leadership(authed(&d.leader.1, release)).await.unwrap();
    let term = acquire(&b, &d.leader).await.term;
    assert!(term > old);
    let calls = lease(&b, &d, term, 1).await;
    let token = calls[0].lease.as_ref().unwrap().token.clone();

    for wrong in [old, term + 1] {
        let err = b
            .calls()
            .transition_call(authed(&d.leader.1, fenced(&calls[0], pb::CallState::Dialing, wrong, &token)))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "term {wrong}: {}", err.message());
    }
    assert_eq!(get(&b, &b.admin, &calls[0].id).await.state(), pb::CallState::Leased);
    let dialing = b
        .calls()
        .transition_call(authed(&d.leader.1, fenced(&calls[0], pb::CallState::Dialing, term, &token)))
        .await
        .unwrap();
    assert_eq!(dialing.into_inner().state(), pb::CallState::Dialing);
}

#[tokio::test]
async fn diallers_need_the_calls_lease_token_while_it_is_dialing() {
    let b = common::start(&[]).await;
    let d = dialling(&b, 2).await;
    let term = acquire(&b, &d.leader).await.term;
    let calls = lease(&b, &d, term, 2).await;
    assert_eq!(calls.len(), 2);
    let (call, other) = (&calls[0], &calls[1]);
    let token = call.lease.as_ref().unwrap().token.clone();
    let other_token = other.lease.as_ref().unwrap().token.clone();
    b.calls().transition_call(authed(&d.leader.1, fenced(call, pb::CallState::Dialing, term, &token))).await.unwrap();

    // Dialing still carries the lease; a dialler with the right term but another call's
    // token (or none: a standby that never held the call) is refused.
    for (secret, wrong) in [(&d.leader.1, other_token.as_str()), (&d.standby.1, ""), (&d.leader.1, "")] {
        let err = b
            .calls()
            .transition_call(authed(secret, fenced(call, pb::CallState::Failed, term, wrong)))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "token {wrong:?}: {}", err.message());
        assert!(err.message().contains("lease token"), "{}", err.message());
    }
    assert_eq!(get(&b, &b.admin, &call.id).await.state(), pb::CallState::Dialing);
    let ringing = b
        .calls()
        .transition_call(authed(&d.leader.1, fenced(call, pb::CallState::Ringing, term, &token)))
        .await
        .unwrap();
    assert_eq!(ringing.into_inner().state(), pb::CallState::Ringing);
}

#[tokio::test]
async fn users_never_see_lease_tokens() {
    let b = common::start(&[]).await;
    let d = dialling(&b, 2).await;
    let term = acquire(&b, &d.leader).await.term;
    let calls = lease(&b, &d, term, 2).await;
    assert!(calls.iter().all(|c| !c.lease.as_ref().unwrap().token.is_empty()), "the dialler gets its tokens");
    let viewer = b.user("viewer@vox.test", pb::Role::Viewer).await;

    for token in [&viewer, &b.admin] {
        let c = get(&b, token, &calls[0].id).await;
        let lease = c.lease.unwrap();
        assert_eq!((lease.owner.as_str(), lease.token.as_str()), (d.leader.0.id.as_str(), ""));
        let list = pb::ListCallsRequest { campaign_id: d.campaign_id.clone(), ..Default::default() };
        let listed = b.calls().list_calls(authed(token, list)).await.unwrap().into_inner().calls;
        assert_eq!(listed.len(), 2);
        assert!(listed.iter().all(|c| c.lease.as_ref().is_some_and(|l| l.token.is_empty())), "{listed:?}");
    }
    // Nodes still read it (the dialler carries on with a call after a restart).
    let seen = get(&b, &d.leader.1, &calls[0].id).await;
    assert_eq!(seen.lease.unwrap().token, calls[0].lease.as_ref().unwrap().token);
}

#[tokio::test]
async fn heartbeats_carry_only_well_formed_endpoints_and_at_most_1024_slots() {
    let b = common::start(&[]).await;
    let region = b.create_region("us-east-1").await;
    let (node, secret) = b.register(pb::NodeKind::Fleet, &region.id).await;
    b.heartbeat(&node.id, &secret, "boot-1", 4).await.unwrap();
    let before = b.node(&node.id).await.workers;
    assert_eq!(before.len(), 4);

    let slots = |n: u32, bad: Option<(usize, &str)>| {
        let mut workers: Vec<pb::WorkerSlot> = (1..=n)
            .map(|i| pb::WorkerSlot {
                index: i,
                state: cpb::WorkerState::Idle as i32,
                call_id: String::new(),
                endpoint: format!("http://10.0.0.5:{}", 7100 + i),
            })
            .collect();
        if let Some((i, endpoint)) = bad {
            workers[i].endpoint = endpoint.into();
        }
        pb::HeartbeatRequest { node_id: node.id.clone(), boot_id: "boot-2".into(), workers, ..Default::default() }
    };
    let cases = [
        (slots(4, Some((3, "ftp://x"))), "workers[3].endpoint:"),
        (slots(4, Some((3, "http://user:pw@h:1"))), "workers[3].endpoint:"),
        (slots(4, Some((0, "unix://relative.sock"))), "workers[0].endpoint:"),
        (slots(4, Some((1, "http://h:1/elsewhere?x=1"))), "workers[1].endpoint:"),
        (slots(1025, None), "workers:"),
    ];
    for (req, field) in cases {
        let err = b.nodes().heartbeat(authed(&secret, req)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
        assert!(err.message().starts_with(field), "{field}: {}", err.message());
        let after = b.node(&node.id).await;
        assert_eq!((after.workers, after.boot_id.as_str()), (before.clone(), "boot-1"), "nothing stored");
    }
    let most = b.nodes().heartbeat(authed(&secret, slots(1024, None))).await.unwrap();
    assert_eq!(most.into_inner().region_id, region.id);
    assert_eq!(b.node(&node.id).await.workers.len(), 1024);
}

/// Item 1: made-up gRPC paths from strangers all count as one `unknown` method, so they
/// cannot grow the metrics without bound.
#[tokio::test]
async fn unknown_grpc_paths_add_no_metric_series() {
    let b = common::start(&[]).await;
    let http = reqwest::Client::new();
    let url = b.process.url();
    let probe = |path: String| {
        let http = http.clone();
        let url = format!("{url}{path}");
        async move {
            http.post(url).header("content-type", "application/grpc").body(Vec::<u8>::new()).send().await.unwrap();
        }
    };
    let scrape = || async { http.get(format!("{url}/metrics")).send().await.unwrap().text().await.unwrap() };
    // The first stranger creates the `unknown` series; nobody after adds one. (The first
    // scrape creates the series of the `/metrics` route itself.)
    probe("/vox.backend.v1.CallService/Warmup".into()).await;
    scrape().await;
    let before = scrape().await;
    for i in 0..200u32 {
        let path = match i % 4 {
            0 => format!("/vox.backend.v1.CallService/Made{i}Up"),
            1 => format!("/attacker.Service{i}/Method"),
            2 => format!("/{i}/{}", "x".repeat(i as usize)),
            _ => format!("/grpc.health.v1.Health/Check{i}"),
        };
        probe(path).await;
    }
    let after = scrape().await;
    let lines = |s: &str| s.lines().filter(|l| !l.starts_with('#')).count();
    assert_eq!(lines(&after), lines(&before), "new series after 200 unknown paths:\n{after}");
    assert!(after.contains("method=\"unknown\""), "{after}");
    assert!(!after.contains("Made"), "{after}");
    assert!(!after.contains("attacker"), "{after}");
}
