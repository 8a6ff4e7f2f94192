//! A fleet host against a real voxbridge: it heartbeats its workers' slots, applies the
//! lifecycle the operator sets, and its workers report calls and recordings.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Request;
use tonic::transport::Channel;
use vox_proto::backend::v1 as bpb;
use vox_proto::common::v1 as common;
use vox_proto::fleet::v1::worker_service_client::WorkerServiceClient;
use vox_proto::fleet::v1::{self as pb, media_in, media_out};
use vox_testkit::ServerProcess;

fn authed<T>(token: &str, msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

/// `voxcore host` with 2 workers, sockets, spool and recordings under `dir`.
fn host_args(dir: &Path, bridge_url: &str) -> Vec<String> {
    let path = |p: &str| dir.join(p).display().to_string();
    ["host", "--workers", "2", "--socket-dir", &path("sock"), "--spool-dir", &path("spool")]
        .into_iter()
        .chain(["--recordings-dir", &path("recordings"), "--bridge-url", bridge_url])
        .map(String::from)
        .collect()
}

async fn until<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..150 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn a_fleet_host_heartbeats_follows_lifecycle_and_reports_calls() {
    let dir = tempfile::tempdir().unwrap();
    let bridge_bin = vox_testkit::workspace_binary("voxbridge", "voxbridge");
    let bridge_args: Vec<String> = [
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        &dir.path().join("bridge").display().to_string(),
        "--heartbeat-interval-ms",
        "300",
    ]
    .map(String::from)
    .to_vec();
    let envs = [
        ("VOX_ADMIN_EMAIL", "admin@vox.test".to_string()),
        ("VOX_ADMIN_PASSWORD", "admin password for tests".to_string()),
    ];
    let bridge = ServerProcess::start("voxbridge", &bridge_bin, &bridge_args, &envs, dir.path()).await.unwrap();
    let channel = Channel::from_shared(bridge.url()).unwrap().connect().await.unwrap();
    let login = bpb::auth_service_client::AuthServiceClient::new(channel.clone())
        .login(bpb::LoginRequest { email: "admin@vox.test".into(), password: "admin password for tests".into() })
        .await
        .unwrap()
        .into_inner();
    let admin = login.access_token;
    let mut regions = bpb::region_service_client::RegionServiceClient::new(channel.clone());
    let region = regions
        .create_region(authed(
            &admin,
            bpb::CreateRegionRequest { name: "us-east-1".into(), country: "US".into(), storage: None },
        ))
        .await
        .unwrap()
        .into_inner();
    let mut nodes = bpb::node_service_client::NodeServiceClient::new(channel.clone());
    let reg = nodes
        .register_node(authed(
            &admin,
            bpb::RegisterNodeRequest {
                kind: bpb::NodeKind::Fleet as i32,
                region_id: region.id.clone(),
                endpoint: "http://127.0.0.1:5002".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let node_id = reg.node.unwrap().id;

    let host_args = host_args(dir.path(), &bridge.url());
    let mut host = ServerProcess::spawn(
        "voxcore-host",
        Path::new(env!("CARGO_BIN_EXE_voxcore")),
        &host_args,
        &[("VOX_NODE_SECRET", reg.api_secret.clone())],
        dir.path(),
    )
    .unwrap();

    let get = async |nodes: &mut bpb::node_service_client::NodeServiceClient<Channel>| {
        nodes.get_node(authed(&admin, bpb::GetNodeRequest { id: node_id.clone() })).await.unwrap().into_inner()
    };
    let online = until("the fleet node online with 2 idle slots", async || {
        let n = get(&mut nodes).await;
        (n.online && n.workers.len() == 2 && n.workers.iter().all(|w| w.state == common::WorkerState::Idle as i32))
            .then_some(n)
    })
    .await;
    assert!(online.workers[0].endpoint.starts_with("unix://"), "{:?}", online.workers[0]);

    // Maintenance drains every worker; resume reopens them.
    let lifecycle = |action: bpb::LifecycleAction| bpb::SetNodeLifecycleRequest {
        node_id: node_id.clone(),
        action: action as i32,
        reason: "test".into(),
    };
    nodes.set_node_lifecycle(authed(&admin, lifecycle(bpb::LifecycleAction::Maintenance))).await.unwrap();
    until("workers draining", async || {
        get(&mut nodes).await.workers.iter().all(|w| w.state == common::WorkerState::Draining as i32).then_some(())
    })
    .await;
    nodes.set_node_lifecycle(authed(&admin, lifecycle(bpb::LifecycleAction::Resume))).await.unwrap();
    until("workers idle again", async || {
        get(&mut nodes).await.workers.iter().all(|w| w.state == common::WorkerState::Idle as i32).then_some(())
    })
    .await;

    // A call: created as the gateway would, attached to worker 1, media, hangup.
    let call = vox_testkit::control::inbound_call_on_worker(
        &channel,
        &admin,
        &region.id,
        &node_id,
        &reg.api_secret,
        "+14155550199",
    )
    .await;
    let mut calls = bpb::call_service_client::CallServiceClient::new(channel.clone());
    let mut worker = WorkerServiceClient::new(vox_node::channel::connect_lazy(&online.workers[0].endpoint).unwrap());
    let r = worker
        .reserve(pb::ReserveRequest { call_id: call.id.clone(), ttl_ms: 5000, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let (tx, rx) = mpsc::channel(128);
    let format = pb::AudioFormat { encoding: pb::AudioEncoding::Mulaw as i32, sample_rate: 8000 };
    tx.send(pb::MediaIn {
        event: Some(media_in::Event::Start(pb::MediaStart {
            reservation_id: r.reservation_id,
            call_id: call.id.clone(),
            format: Some(format),
            stream_id: String::new(),
        })),
    })
    .await
    .unwrap();
    let mut media = worker.media(ReceiverStream::new(rx)).await.unwrap().into_inner();
    assert!(matches!(media.next().await.unwrap().unwrap().event, Some(media_out::Event::Started(_))));
    until("the call in progress", async || {
        let c = calls.get_call(authed(&admin, bpb::GetCallRequest { id: call.id.clone() })).await.unwrap().into_inner();
        (c.state() == bpb::CallState::InProgress).then_some(())
    })
    .await;
    until("worker 1 in call", async || {
        get(&mut nodes)
            .await
            .workers
            .iter()
            .any(|w| w.index == 1 && w.state == common::WorkerState::InCall as i32 && w.call_id == call.id)
            .then_some(())
    })
    .await;
    for i in 0..50u64 {
        tx.send(pb::MediaIn {
            event: Some(media_in::Event::Audio(pb::AudioFrame {
                payload: vec![0xD5; 160],
                timestamp_ms: i * 20,
                sequence: i,
            })),
        })
        .await
        .unwrap();
    }
    tx.send(pb::MediaIn { event: Some(media_in::Event::Hangup(pb::Hangup { reason: "caller_hangup".into() })) })
        .await
        .unwrap();
    let done = until("the call completed with its recording", async || {
        let c = calls.get_call(authed(&admin, bpb::GetCallRequest { id: call.id.clone() })).await.unwrap().into_inner();
        (c.state() == bpb::CallState::Completed && c.recording.is_some()).then_some(c)
    })
    .await;
    let rec = done.recording.unwrap();
    assert_eq!(rec.duration_ms, 1000);
    assert!(dir.path().join("recordings").join(&rec.key).is_file(), "the object the call points at exists");
    assert_eq!(done.end_reason, "caller_hangup");
    assert_eq!((done.node_id.as_str(), done.worker_index), (node_id.as_str(), 1));

    // Shutdown: the workers drain and exit, then the host exits by itself.
    nodes.set_node_lifecycle(authed(&admin, lifecycle(bpb::LifecycleAction::Shutdown))).await.unwrap();
    let status = host.wait_exit(Duration::from_secs(15)).await.unwrap();
    assert!(status.success(), "{status}");
}

/// The pids of processes whose command line mentions `marker`.
fn pids_with(marker: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let args: Vec<String> = cmd.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).to_string()).collect();
        if args.get(1).is_some_and(|a| a == "worker") && args.iter().any(|a| a.contains(marker)) {
            out.push(pid);
        }
    }
    out
}

#[tokio::test]
async fn workers_do_not_outlive_a_crashed_host() {
    let dir = tempfile::tempdir().unwrap();
    let sockets = dir.path().join("sock");
    // No voxbridge: the host keeps retrying its heartbeat and runs its workers anyway.
    let args = host_args(dir.path(), "http://127.0.0.1:9");
    let secret = "vxn.nd_0123456789abcdef.0123456789abcdefghjkmnpqrstvwxyz".to_string();
    let mut host = ServerProcess::spawn(
        "voxcore-host",
        Path::new(env!("CARGO_BIN_EXE_voxcore")),
        &args,
        &[("VOX_NODE_SECRET", secret)],
        dir.path(),
    )
    .unwrap();
    let marker = sockets.display().to_string();
    until("two workers running", async || {
        (pids_with(&marker).len() == 2 && sockets.join("voxcore_2.sock").exists()).then_some(())
    })
    .await;
    host.kill();
    until("the orphaned workers gone", async || pids_with(&marker).is_empty().then_some(())).await;
}
