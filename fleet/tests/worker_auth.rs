//! A worker on TCP serves only a gateway with a worker token from its cluster's voxbridge
//! (or its own host): everyone else is refused UNAUTHENTICATED before anything happens.
//! Call ids that are not of the id alphabet are refused before they touch a path.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::{Bearer, Client, Cluster, client, new_call, start_worker, until};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use vox_proto::common::v1::WorkerState;
use vox_proto::fleet::v1 as pb;
use vox_testkit::ServerProcess;

/// A worker listening on 127.0.0.1 with the cluster's fleet node secret, its spool at
/// `<dir>/data/spool` (so `../../x` from there would land inside `dir`).
async fn tcp_worker(cluster: &Cluster, dir: &Path) -> ServerProcess {
    let args: Vec<String> = ["worker", "--listen", "127.0.0.1:0", "--log-format", "json", "--spool-dir"]
        .map(String::from)
        .into_iter()
        .chain([dir.join("data/spool").display().to_string(), "--bridge-url".into(), cluster.bridge.url()])
        .collect();
    start_worker("voxcore", &args, &[("VOX_NODE_SECRET", cluster.fleet_secret.clone())], dir).await
}

/// A gateway's client, once the worker has voxbridge's key to check its token with.
async fn gateway_client(cluster: &Cluster, url: &str) -> Client {
    let gateway = client(url, Bearer::new(&cluster.worker_token().await));
    until("the worker accepting the gateway's token", async || {
        gateway.clone().status(pb::StatusRequest {}).await.ok().map(|_| ())
    })
    .await;
    gateway
}

/// Media with `first` as its first message: the worker's answer.
async fn media(c: &mut Client, first: pb::MediaIn) -> Result<(), tonic::Status> {
    let (tx, rx) = mpsc::channel(4);
    tx.send(first).await.unwrap();
    c.media(ReceiverStream::new(rx)).await.map(|_| ())
}

#[tokio::test]
async fn a_tcp_worker_serves_gateways_with_tokens_and_refuses_everyone_else() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path()).await;
    let worker = tcp_worker(&cluster, dir.path()).await;
    let mut gateway = gateway_client(&cluster, &worker.endpoint).await;
    let reserved = gateway
        .reserve(pb::ReserveRequest { call_id: new_call(), ttl_ms: 5000, ..Default::default() })
        .await
        .unwrap()
        .into_inner();

    // Another cluster's voxbridge signs with another key.
    let other_cluster = vox_node::tokens::TokenSigner::from_seed(&[9; 32]).unwrap();
    let (foreign, _) = other_cluster
        .worker_token(&cluster.gateway_id, &cluster.region, chrono::Utc::now(), chrono::Duration::minutes(5))
        .unwrap();
    let intruders = [
        ("no credentials", Bearer::none()),
        ("a forged token", Bearer::new("eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJuZF94In0.c2lnbmF0dXJl")),
        ("another cluster's token", Bearer::new(&foreign)),
        ("a gateway's node secret", Bearer::new(&cluster.gateway_secret)),
    ];
    for (who, bearer) in intruders {
        let mut c = client(&worker.endpoint, bearer);
        let drain = c.drain(pb::DrainRequest { exit_when_idle: true }).await.unwrap_err();
        assert_eq!(drain.code(), Code::Unauthenticated, "{who}: {drain:?}");
        assert!(!drain.message().is_empty(), "{who}: the refusal says why");
        let m = media(&mut c, vox_testkit::mulaw_start(&reserved.reservation_id, &new_call())).await.unwrap_err();
        assert_eq!(m.code(), Code::Unauthenticated, "{who}: {m:?}");
        let r = c.reserve(pb::ReserveRequest { call_id: new_call(), ..Default::default() }).await.unwrap_err();
        assert_eq!(r.code(), Code::Unauthenticated, "{who}: {r:?}");
    }

    // Nothing changed: still taking calls, the gateway's reservation intact.
    let status = gateway.status(pb::StatusRequest {}).await.unwrap().into_inner();
    assert_eq!(status.state, WorkerState::Reserved as i32, "{status:?}");
    gateway.release(pb::ReleaseRequest { reservation_id: reserved.reservation_id }).await.unwrap();
    let status = gateway.status(pb::StatusRequest {}).await.unwrap().into_inner();
    assert_eq!((status.state, status.worker_calls), (WorkerState::Idle as i32, 0), "{status:?}");

    // Health stays open to anyone (load balancers, voxctl).
    let channel = vox_node::channel::connect_lazy(&worker.endpoint).unwrap();
    let health = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest { service: String::new() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);

    // The worker's own host (its node secret) and the gateway may drain it.
    let mut host = client(&worker.endpoint, Bearer::new(&cluster.fleet_secret));
    let drained = host.drain(pb::DrainRequest { exit_when_idle: false }).await.unwrap().into_inner();
    assert_eq!(drained.state, WorkerState::Draining as i32);
    host.resume(pb::ResumeRequest {}).await.unwrap();
    let drained = gateway.drain(pb::DrainRequest { exit_when_idle: false }).await.unwrap().into_inner();
    assert_eq!(drained.state, WorkerState::Draining as i32);
}

/// Every file under `dir`.
fn files(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.insert(path);
        }
    }
    out
}

#[tokio::test]
async fn call_ids_outside_the_id_alphabet_are_refused_and_write_nothing() {
    // voxbridge's files apart: only the worker writes under `dir`.
    let bridge_dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(bridge_dir.path()).await;
    let dir = tempfile::tempdir().unwrap();
    let worker = tcp_worker(&cluster, dir.path()).await;
    let mut gateway = gateway_client(&cluster, &worker.endpoint).await;
    let spool = dir.path().join("data/spool");
    let before = files(dir.path());

    let good = new_call();
    let r = gateway
        .reserve(pb::ReserveRequest { call_id: good.clone(), ttl_ms: 5000, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    for bad in ["../../etc/x", "ca_../../x", "ca_0123456789abcdef/../../x", "/tmp/x", ""] {
        let err = gateway
            .reserve(pb::ReserveRequest { call_id: bad.into(), ttl_ms: 5000, ..Default::default() })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "reserve {bad:?}: {err:?}");
        assert!(err.message().starts_with("call_id:"), "{}", err.message());
        // Media naming a live reservation but another, bad, call id.
        let err = media(&mut gateway, vox_testkit::mulaw_start(&r.reservation_id, bad)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "media {bad:?}: {err:?}");
        assert!(err.message().starts_with("start.call_id:"), "{}", err.message());
    }
    let status = gateway.status(pb::StatusRequest {}).await.unwrap().into_inner();
    assert_eq!((status.state, status.call_id.as_str()), (WorkerState::Reserved as i32, good.as_str()));
    gateway.release(pb::ReleaseRequest { reservation_id: r.reservation_id }).await.unwrap();

    assert_eq!(files(dir.path()), before, "no file appeared under the spool or its parents");
    assert!(files(&spool).is_empty());
    assert!(!Path::new("/etc/x.json").exists() && !Path::new("/etc/x.wav").exists());
}
