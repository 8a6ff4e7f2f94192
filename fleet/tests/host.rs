//! A fleet host against a real voxbridge: it heartbeats its workers' slots, applies the
//! lifecycle the operator sets, and its workers report calls and recordings; with
//! `--listen-ip` its workers are on TCP, advertised where other machines reach them.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Request;
use tonic::transport::Channel;
use vox_proto::backend::v1 as bpb;
use vox_proto::common::v1::WorkerState;
use vox_proto::fleet::v1::{self as pb, media_in, media_out};
use vox_testkit::ServerProcess;

use common::{Bearer, Cluster, until};

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

    let mut host_args = host_args(dir.path(), &bridge.url());
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    host_args.extend(["--metrics-listen".into(), format!("127.0.0.1:{metrics_port}")]);
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
        (n.online && n.workers.len() == 2 && n.workers.iter().all(|w| w.state == WorkerState::Idle as i32)).then_some(n)
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
        get(&mut nodes).await.workers.iter().all(|w| w.state == WorkerState::Draining as i32).then_some(())
    })
    .await;
    nodes.set_node_lifecycle(authed(&admin, lifecycle(bpb::LifecycleAction::Resume))).await.unwrap();
    until("workers idle again", async || {
        get(&mut nodes).await.workers.iter().all(|w| w.state == WorkerState::Idle as i32).then_some(())
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
    // The worker serves its own host's secret (a gateway would show a worker token).
    let mut worker = common::client(&online.workers[0].endpoint, Bearer::new(&reg.api_secret));
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
            .any(|w| w.index == 1 && w.state == WorkerState::InCall as i32 && w.call_id == call.id)
            .then_some(())
    })
    .await;
    // Paced like a carrier (the recorder aligns the channels in real time).
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for i in 0..50u64 {
        tick.tick().await;
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

    // The host's /metrics counts what worker 1 did, as of its next poll.
    let metrics = until("the host's /metrics to count the call", async || {
        let text = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics")).await.ok()?.text().await.ok()?;
        text.contains("voxcore_calls_total{worker=\"1\",outcome=\"completed\"} 1").then_some(text)
    })
    .await;
    for line in [
        "voxcore_frames_received_total{worker=\"1\"} 50",
        "voxcore_frame_lateness_seconds_count{worker=\"1\"} 50",
        "voxcore_worker_slots{state=\"idle\"} 2",
        "vox_build_info{service=\"voxcore\"",
        "process_resident_memory_bytes ",
    ] {
        assert!(metrics.contains(line), "{line} missing from the host's /metrics:\n{metrics}");
    }

    // Shutdown: the workers drain and exit, then the host exits by itself.
    nodes.set_node_lifecycle(authed(&admin, lifecycle(bpb::LifecycleAction::Shutdown))).await.unwrap();
    let status = host.wait_exit(Duration::from_secs(15)).await.unwrap();
    assert!(status.success(), "{status}");
}

/// The pids of worker processes whose command line mentions `marker`, with their argv.
fn workers_with(marker: &str) -> Vec<(u32, Vec<String>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let args: Vec<String> = cmd.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).to_string()).collect();
        if args.get(1).is_some_and(|a| a == "worker") && args.iter().any(|a| a.contains(marker)) {
            out.push((pid, args));
        }
    }
    out
}

/// The pids of worker processes whose command line mentions `marker`.
fn pids_with(marker: &str) -> Vec<u32> {
    workers_with(marker).into_iter().map(|(pid, _)| pid).collect()
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

/// A port P such that P .. P+n-1 are free on every one of `ips`.
fn free_base_port(ips: &[&str], n: u16) -> u16 {
    for _ in 0..50 {
        let p = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if p.checked_add(n).is_some()
            && ips.iter().all(|ip| (0..n).all(|k| std::net::TcpListener::bind((*ip, p + k)).is_ok()))
        {
            return p;
        }
    }
    panic!("no {n} free ports in a row on {ips:?}");
}

/// `voxcore host` for node `secret` with 2 workers, its sockets in `sockets`, its spool
/// and recordings under `dir`, and `flags` saying where its workers listen.
fn tcp_host(name: &str, dir: &Path, sockets: &Path, cluster: &Cluster, secret: &str, flags: &[&str]) -> ServerProcess {
    let path = |p: &str| dir.join(p).display().to_string();
    let args: Vec<String> = ["host", "--workers", "2", "--socket-dir", &sockets.display().to_string()]
        .into_iter()
        .chain(["--spool-dir", &path("spool"), "--recordings-dir", &path("recordings")])
        .chain(["--bridge-url", &cluster.bridge.url()])
        .chain(flags.iter().copied())
        .map(String::from)
        .collect();
    std::fs::create_dir_all(dir).unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_voxcore"));
    ServerProcess::spawn(name, bin, &args, &[("VOX_NODE_SECRET", secret.to_string())], dir).unwrap()
}

/// The node once it is online with 2 idle workers, its slots by index.
async fn online_with_two_idle(cluster: &Cluster, node_id: &str) -> Vec<bpb::WorkerSlot> {
    until("the fleet node online with 2 idle slots", async || {
        let mut n = cluster.node(node_id).await;
        n.workers.sort_by_key(|w| w.index);
        (n.online && n.workers.len() == 2 && n.workers.iter().all(|w| w.state == WorkerState::Idle as i32))
            .then_some(n.workers)
    })
    .await
}

#[tokio::test]
async fn two_hosts_on_two_addresses_advertise_distinct_tcp_workers() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path()).await;
    let (other_id, other_secret) = cluster.another_fleet_node().await;
    let port = free_base_port(&["127.0.0.2", "127.0.0.3"], 2);
    let (p, q) = (port.to_string(), (port + 1).to_string());
    // One socket folder for both, as two machines with the same layout would have.
    let sockets = dir.path().join("sock");
    let _a = tcp_host(
        "host-a",
        &dir.path().join("a"),
        &sockets,
        &cluster,
        &cluster.fleet_secret,
        &["--listen-ip", "127.0.0.2", "--worker-base-port", &p],
    );
    let _b = tcp_host(
        "host-b",
        &dir.path().join("b"),
        &sockets,
        &cluster,
        &other_secret,
        &["--listen-ip", "127.0.0.3", "--worker-base-port", &p],
    );

    let a = online_with_two_idle(&cluster, &cluster.fleet_id).await;
    let b = online_with_two_idle(&cluster, &other_id).await;
    let endpoints = |slots: &[bpb::WorkerSlot]| slots.iter().map(|w| w.endpoint.clone()).collect::<Vec<_>>();
    assert_eq!(endpoints(&a), [format!("http://127.0.0.2:{p}"), format!("http://127.0.0.2:{q}")]);
    assert_eq!(endpoints(&b), [format!("http://127.0.0.3:{p}"), format!("http://127.0.0.3:{q}")]);

    // What a gateway on another machine does: dial the advertised address with its token.
    let token = cluster.worker_token().await;
    for slot in a.iter().chain(&b) {
        let mut gateway = common::client(&slot.endpoint, Bearer::new(&token));
        let status = until("the worker accepting the gateway's token", async || {
            gateway.status(pb::StatusRequest {}).await.ok().map(|s| s.into_inner())
        })
        .await;
        assert_eq!(status.worker_index, slot.index, "{}", slot.endpoint);
    }
    assert!(!sockets.join("voxcore_1.sock").exists(), "TCP workers make no socket to collide on");
}

#[tokio::test]
async fn workers_on_ports_of_their_choosing_are_advertised_and_followed_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path()).await;
    let host_dir = dir.path().join("host");
    let sockets = dir.path().join("sock");
    let _host = tcp_host(
        "host",
        &host_dir,
        &sockets,
        &cluster,
        &cluster.fleet_secret,
        &["--listen-ip", "127.0.0.4", "--worker-base-port", "0"],
    );
    let slots = online_with_two_idle(&cluster, &cluster.fleet_id).await;
    let ports: Vec<u16> =
        slots.iter().map(|w| w.endpoint.strip_prefix("http://127.0.0.4:").unwrap().parse().unwrap()).collect();
    assert!(ports[0] != 0 && ports[1] != 0 && ports[0] != ports[1], "{slots:?}");

    // Worker 1 dies; its next run takes another port, and the heartbeats follow it.
    let marker = host_dir.join("spool").display().to_string();
    let (pid, _) = workers_with(&marker)
        .into_iter()
        .find(|(_, args)| args.windows(2).any(|w| w[0] == "--index" && w[1] == "1"))
        .unwrap();
    std::process::Command::new("kill").arg("-KILL").arg(pid.to_string()).status().unwrap();
    let moved = until("worker 1 advertised at its new port", async || {
        let n = cluster.node(&cluster.fleet_id).await;
        n.workers.into_iter().find(|w| w.index == 1 && w.endpoint != slots[0].endpoint)
    })
    .await;
    let token = cluster.worker_token().await;
    let status = common::client(&moved.endpoint, Bearer::new(&token)).status(pb::StatusRequest {}).await.unwrap();
    assert_eq!(status.into_inner().worker_index, 1);
}

#[tokio::test]
async fn with_a_certificate_workers_speak_tls_to_gateways_and_their_host() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path()).await;
    let ca = vox_testkit::tls::TestCa::new(&dir.path().join("pki"), "vox-fleet-test").unwrap();
    let cert = ca.server_cert("fleet", &["127.0.0.5"]).unwrap();
    let tls = [cert.cert.display().to_string(), cert.key.display().to_string(), ca.ca_pem.display().to_string()];
    let port = free_base_port(&["127.0.0.5"], 2).to_string();
    let flags = ["--listen-ip", "127.0.0.5", "--worker-base-port", &port];
    let flags = [&flags[..], &["--tls-cert", &tls[0], "--tls-key", &tls[1], "--tls-ca", &tls[2]]].concat();
    let sockets = dir.path().join("sock");
    let _host = tcp_host("host", &dir.path().join("host"), &sockets, &cluster, &cluster.fleet_secret, &flags);
    // Online with idle slots: the host reached its workers over TLS, trusting the CA.
    let slots = online_with_two_idle(&cluster, &cluster.fleet_id).await;
    assert_eq!(slots[0].endpoint, format!("https://127.0.0.5:{port}"));

    // A gateway that trusts the cluster CA gets in; plain HTTP and untrusting clients do not.
    vox_node::tls::trust_ca_file(&ca.ca_pem).unwrap();
    let token = cluster.worker_token().await;
    let mut gateway = common::client(&slots[0].endpoint, Bearer::new(&token));
    let status = until("the worker accepting the gateway's token over TLS", async || {
        gateway.status(pb::StatusRequest {}).await.ok().map(|s| s.into_inner())
    })
    .await;
    assert_eq!(status.worker_index, 1);
    let plain =
        common::client(&format!("http://127.0.0.5:{port}"), Bearer::new(&token)).status(pb::StatusRequest {}).await;
    assert!(plain.is_err(), "plain HTTP/2 to the TLS port gets nowhere");
    let untrusting = tonic::transport::Endpoint::from_shared(slots[0].endpoint.clone())
        .unwrap()
        .tls_config(tonic::transport::ClientTlsConfig::new().with_webpki_roots())
        .unwrap()
        .connect()
        .await;
    assert!(untrusting.is_err(), "a client that does not trust the cluster CA fails the handshake");
}
