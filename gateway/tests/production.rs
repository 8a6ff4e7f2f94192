//! The production stack end to end: two voxbridge instances on one MongoDB and one Redis,
//! a region whose recordings go to S3, a fleet host heartbeating to one instance and a
//! gateway to the other. A carrier's call through the gateway reaches a worker, whose
//! recording lands in the region's bucket (settings from voxbridge, none of the host's
//! own), the call points at it, and the console API plays it through a presigned URL.
//! Needs the servers `bash ops/test.sh` starts; never skips.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;
use tonic::transport::Channel;
use vox_blob::BlobStore;
use vox_proto::backend::v1 as bpb;
use vox_proto::common::v1 as pcommon;
use vox_testkit::{ServerProcess, control};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "set {name} or run bash ops/test.sh, which starts MongoDB, Redis and S3 servers (these tests never skip)"
        )
    })
}

async fn bridge(dir: &Path, name: &str, shared: &[String]) -> ServerProcess {
    let mut args: Vec<String> = ["--listen", "127.0.0.1:0", "--heartbeat-interval-ms", "500", "--log-format", "json"]
        .map(String::from)
        .to_vec();
    args.extend(["--data-dir".to_string(), dir.join(name).display().to_string()]);
    args.extend(shared.iter().cloned());
    control::start_bridge(name, &args, dir).await
}

async fn register(channel: &Channel, admin: &str, kind: bpb::NodeKind, region: &str) -> (String, String) {
    let r = control::register_node(channel, admin, region, kind).await;
    (r.node.unwrap().id, r.api_secret)
}

#[tokio::test]
async fn a_call_through_the_gateway_is_recorded_to_s3_on_two_instances_of_mongo_and_redis() {
    let (mongo, redis) = (env("VOX_TEST_MONGO_URL"), env("VOX_TEST_REDIS_URL"));
    let (s3_url, s3_access, s3_secret) =
        (env("VOX_TEST_S3_URL"), env("VOX_TEST_S3_ACCESS_KEY"), env("VOX_TEST_S3_SECRET_KEY"));
    let dir = tempfile::tempdir().unwrap();
    let shared: Vec<String> = [
        "--store",
        &mongo,
        "--store-database",
        &format!("vox_e2e_{}", vox_domain::ids::random_token(8)),
        "--redis",
        &redis,
        "--jwt-secret",
        "a shared jwt secret for both instances, 32+ bytes",
        "--master-key",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    ]
    .map(String::from)
    .to_vec();
    let a = bridge(dir.path(), "bridge-a", &shared).await;
    let b = bridge(dir.path(), "bridge-b", &shared).await;
    let (ch_a, ch_b) = (
        Channel::from_shared(a.url()).unwrap().connect().await.unwrap(),
        Channel::from_shared(b.url()).unwrap().connect().await.unwrap(),
    );
    let admin = control::login(&ch_a).await;

    // The region's storage is the only place S3 settings exist.
    let bucket = format!("vox-e2e-{}", vox_domain::ids::random_token(8).to_ascii_lowercase());
    let region = bpb::region_service_client::RegionServiceClient::new(ch_a.clone())
        .create_region(authed(
            &admin,
            bpb::CreateRegionRequest {
                name: "us-east-1".into(),
                country: "US".into(),
                storage: Some(bpb::RegionStorageInput {
                    endpoint_url: s3_url.clone(),
                    bucket: bucket.clone(),
                    access_key: s3_access.clone(),
                    secret_key: Some(s3_secret.clone()),
                    use_ssl: false,
                    signing_region: "us-east-1".into(),
                    force_path_style: true,
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .id;

    // A fleet host on A, with no storage flag of its own; a gateway on B.
    let (fleet_id, fleet_secret) = register(&ch_a, &admin, bpb::NodeKind::Fleet, &region).await;
    let host_args: Vec<String> = vec![
        "host".into(),
        "--workers".into(),
        "2".into(),
        "--socket-dir".into(),
        dir.path().join("sock").display().to_string(),
        "--spool-dir".into(),
        dir.path().join("spool").display().to_string(),
        "--bridge-url".into(),
        a.url(),
        "--log-format".into(),
        "json".into(),
    ];
    let _host = ServerProcess::spawn(
        "voxcore-host",
        &vox_testkit::workspace_binary("voxcore", "voxcore"),
        &host_args,
        &[("VOX_NODE_SECRET", fleet_secret)],
        dir.path(),
    )
    .unwrap();
    let (_gate_id, gate_secret) = register(&ch_b, &admin, bpb::NodeKind::Gateway, &region).await;
    let gate_args: Vec<String> = ["--listen", "127.0.0.1:0", "--log-format", "json", "--bridge-url"]
        .map(String::from)
        .into_iter()
        .chain([b.url()])
        .collect();
    let gate = ServerProcess::start(
        "voxgate",
        Path::new(env!("CARGO_BIN_EXE_voxgate")),
        &gate_args,
        &[("VOX_NODE_SECRET", gate_secret), ("TWILIO_AUTH_TOKEN", TOKEN.to_string())],
        dir.path(),
    )
    .await
    .unwrap();
    let health =
        async || -> Value { reqwest::get(format!("{}/health/fleet", gate.url())).await.unwrap().json().await.unwrap() };
    until("the gateway (on B) sees the fleet host's slots (heartbeating to A)", async || {
        (health().await["fleet_available"] == 2).then_some(())
    })
    .await;

    // A carrier's call, created through B, streamed through the gateway to a worker.
    let mut calls_b = bpb::call_service_client::CallServiceClient::new(ch_b.clone());
    let call_id = calls_b
        .create_inbound_call(authed(
            &admin,
            bpb::CreateInboundCallRequest {
                region_id: region.clone(),
                channel: pcommon::Channel::Phone as i32,
                from_number: "+14155550199".into(),
                to_number: "+14155550100".into(),
                provider_call_id: "CA-e2e".into(),
                campaign_id: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .id;
    let url = format!("ws://{}/media/twilio", gate.addr);
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url.as_str()).unwrap();
    req.headers_mut()
        .insert("x-twilio-signature", voxgate::media::twilio::signature(TOKEN, &url, &[]).parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    start(&mut ws, &call_id).await;
    for i in 0..50 {
        media(&mut ws, i).await;
        assert_eq!(recv(&mut ws).await.unwrap()["event"], "media", "the echo agent answers frame {i}");
    }
    stop(&mut ws).await;

    // Read through A: completed, pointing at its recording.
    let mut calls_a = bpb::call_service_client::CallServiceClient::new(ch_a.clone());
    let started = std::time::Instant::now();
    let done = until("the call completed and pointing at its recording", async || {
        let c =
            calls_a.get_call(authed(&admin, bpb::GetCallRequest { id: call_id.clone() })).await.unwrap().into_inner();
        (c.state() == bpb::CallState::Completed && c.recording.is_some()).then_some(c)
    })
    .await;
    eprintln!("hangup to recording in S3 and the call pointing at it: {:?}", started.elapsed());
    let rec = done.recording.unwrap();
    assert_eq!(rec.duration_ms, 1000, "50 frames of 20 ms");

    // Exactly that object is in the region's bucket, whole.
    let store = vox_blob_s3::S3Store::new(vox_blob_s3::S3Settings {
        endpoint_url: s3_url,
        bucket,
        access_key: s3_access,
        secret_key: s3_secret,
        signing_region: "us-east-1".into(),
        force_path_style: true,
        create_bucket: false,
        part_size: vox_blob_s3::DEFAULT_PART_SIZE,
    })
    .unwrap();
    assert_eq!(store.list("").await.unwrap(), vec![rec.key.clone()]);
    let object = store.get(&rec.key).await.unwrap();
    assert_eq!(object.len() as u64, rec.size_bytes);
    assert_eq!(&object[..4], b"RIFF");
    assert!(!dir.path().join("spool").join(format!("{call_id}.wav")).exists(), "the spool is empty again");

    // The console API (through the gateway, on B) plays it through a presigned URL and
    // checks the region's storage.
    let http = reqwest::Client::new();
    let token = rest_login(&gate.url()).await;
    let r =
        http.get(format!("{}/api/v1/calls/{call_id}/recording", gate.url())).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let playback: Value = r.json().await.unwrap();
    let expires: chrono::DateTime<chrono::Utc> = playback["expires_at"].as_str().unwrap().parse().unwrap();
    let left = expires - chrono::Utc::now();
    assert!(left > chrono::Duration::minutes(14) && left <= chrono::Duration::minutes(15), "{playback}");
    let played = reqwest::get(playback["url"].as_str().unwrap()).await.unwrap();
    assert_eq!(played.status(), 200, "{playback}");
    assert_eq!(played.bytes().await.unwrap().as_ref(), object.as_slice());

    let r = http
        .post(format!("{}/api/v1/regions/{region}/storage/test", gate.url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let check: Value = r.json().await.unwrap();
    assert_eq!((check["ok"].as_bool(), check["backend"].as_str()), (Some(true), Some("s3")), "{check}");
    assert_eq!(store.list("").await.unwrap(), vec![rec.key.clone()], "the check cleaned up after itself");

    // The fleet node's lifecycle and presence still cross instances with S3 in the mix.
    let node = bpb::node_service_client::NodeServiceClient::new(ch_b.clone())
        .get_node(authed(&admin, bpb::GetNodeRequest { id: fleet_id }))
        .await
        .unwrap()
        .into_inner();
    assert!(node.online);
}

/// The embedded default: recordings in voxbridge's folder, played back through the
/// gateway's signed path, which voxbridge signs and checks.
#[tokio::test]
async fn a_local_recording_plays_through_the_gateways_signed_path() {
    let c = cluster(1).await;
    let call_id = c.inbound_call().await;
    let mut ws = c.connect(TOKEN).await.unwrap();
    start(&mut ws, &call_id).await;
    for i in 0..25 {
        media(&mut ws, i).await;
        recv(&mut ws).await.unwrap();
    }
    stop(&mut ws).await;
    let rec = until("the call pointing at its recording", async || c.call(&call_id).await.recording).await;
    let file = std::fs::read(c.dir.path().join("recordings").join(&rec.key)).unwrap();

    let http = reqwest::Client::new();
    let token = rest_login(&c.gate.url()).await;
    let playback: Value = http
        .get(format!("{}/api/v1/calls/{call_id}/recording", c.gate.url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let path = playback["url"].as_str().unwrap();
    assert!(path.starts_with(&format!("/api/v1/recordings/{}?expires=", rec.key)), "{playback}");
    // No bearer: the signature is the credential.
    let r = reqwest::get(format!("{}{path}", c.gate.url())).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "audio/wav");
    assert_eq!(r.bytes().await.unwrap().as_ref(), file.as_slice());
    let forged = path.replace("signature=", "signature=0");
    let r = reqwest::get(format!("{}{forged}", c.gate.url())).await.unwrap();
    assert_eq!(r.status(), 403);
    let other = path.replace(&call_id, "ca_someoneelse");
    assert_eq!(reqwest::get(format!("{}{other}", c.gate.url())).await.unwrap().status(), 403);

    // A call without a recording: 404.
    let none = c.inbound_call().await;
    let r =
        http.get(format!("{}/api/v1/calls/{none}/recording", c.gate.url())).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let check: Value = http
        .post(format!("{}/api/v1/regions/{}/storage/test", c.gate.url(), c.region))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((check["ok"].as_bool(), check["backend"].as_str()), (Some(true), Some("local")), "{check}");
}
