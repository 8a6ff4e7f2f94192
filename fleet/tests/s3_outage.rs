//! A worker whose region stores recordings in S3, when S3 goes away as a call ends: the
//! recording waits in the spool, goes up once S3 is back, the call points at it, and
//! exactly one object exists. The S3 server (s3s-fs, which `bash ops/test.sh` installs)
//! is this test's own, so it can be stopped and started again on the same port and data.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Request;
use tonic::transport::Channel;
use vox_blob::BlobStore;
use vox_proto::backend::v1 as bpb;
use vox_proto::fleet::v1::worker_service_client::WorkerServiceClient;
use vox_proto::fleet::v1::{self as pb, media_in, media_out};
use vox_testkit::{ServerProcess, control};

const AK: &str = "outage-access";
const SK: &str = "outage-secret-key";

fn authed<T>(token: &str, msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

async fn until<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..300 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

fn s3s_fs() -> PathBuf {
    if let Some(p) = std::env::var_os("VOX_TEST_S3FS_BIN").map(PathBuf::from).filter(|p| p.is_file()) {
        return p;
    }
    let home = std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo/bin/s3s-fs"));
    match home.filter(|p| p.is_file()) {
        Some(p) => p,
        None => vox_testkit::require_program("s3s-fs", "run bash ops/install-test-deps.sh (or bash ops/test.sh)"),
    }
}

/// s3s-fs on `port` over `root`, waited on until it accepts connections.
async fn start_s3(port: u16, root: &Path, log_dir: &Path) -> ServerProcess {
    let args: Vec<String> =
        ["--host", "127.0.0.1", "--port", &port.to_string(), "--access-key", AK, "--secret-key", SK]
            .map(String::from)
            .into_iter()
            .chain([root.display().to_string()])
            .collect();
    let p = ServerProcess::spawn("s3s-fs", &s3s_fs(), &args, &[], log_dir).unwrap();
    until("s3s-fs listening", async || tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok().map(|_| ()))
        .await;
    p
}

#[tokio::test]
async fn a_recording_waits_out_an_s3_outage_and_lands_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let s3_root = dir.path().join("s3");
    std::fs::create_dir_all(&s3_root).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut s3 = start_s3(port, &s3_root, dir.path()).await;

    let bridge_args: Vec<String> =
        ["--listen", "127.0.0.1:0", "--data-dir", &dir.path().join("bridge").display().to_string()]
            .map(String::from)
            .to_vec();
    let bridge = control::start_bridge("voxbridge", &bridge_args, dir.path()).await;
    let (channel, admin) = control::admin_session(&bridge.url()).await;
    let storage = bpb::RegionStorageInput {
        endpoint_url: format!("http://127.0.0.1:{port}"),
        bucket: "recordings".into(),
        access_key: AK.into(),
        secret_key: Some(SK.into()),
        use_ssl: false,
        signing_region: "us-east-1".into(),
        force_path_style: true,
    };
    let region = bpb::region_service_client::RegionServiceClient::new(channel.clone())
        .create_region(authed(
            &admin,
            bpb::CreateRegionRequest { name: "eu-west-1".into(), country: "IE".into(), storage: Some(storage) },
        ))
        .await
        .unwrap()
        .into_inner();
    let reg = bpb::node_service_client::NodeServiceClient::new(channel.clone())
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

    // A worker that knows voxbridge and nothing of S3.
    let spool = dir.path().join("spool");
    let worker_args: Vec<String> = ["worker", "--listen", "127.0.0.1:0", "--log-format", "json", "--spool-dir"]
        .map(String::from)
        .into_iter()
        .chain([spool.display().to_string(), "--bridge-url".into(), bridge.url()])
        .collect();
    let worker = ServerProcess::start_listening(
        "voxcore",
        Path::new(env!("CARGO_BIN_EXE_voxcore")),
        &worker_args,
        &[("VOX_NODE_SECRET", reg.api_secret.clone())],
        dir.path(),
    )
    .await
    .unwrap();

    let call = vox_testkit::control::inbound_call_on_worker(
        &channel,
        &admin,
        &region.id,
        &node_id,
        &reg.api_secret,
        "+353155550199",
    )
    .await;
    let mut calls = bpb::call_service_client::CallServiceClient::new(channel.clone());
    // The worker's own host's credentials (the node secret it runs with).
    let host = vox_node::NodeAuth::new(vox_node::NodeSecret::parse("node secret", &reg.api_secret).unwrap());
    let channel_to_worker = Channel::from_shared(worker.endpoint.clone()).unwrap().connect().await.unwrap();
    let mut client = WorkerServiceClient::with_interceptor(channel_to_worker, host);
    let r = client
        .reserve(pb::ReserveRequest { call_id: call.id.clone(), ttl_ms: 5000, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let (tx, rx) = mpsc::channel(256);
    tx.send(pb::MediaIn {
        event: Some(media_in::Event::Start(pb::MediaStart {
            reservation_id: r.reservation_id,
            call_id: call.id.clone(),
            format: Some(pb::AudioFormat { encoding: pb::AudioEncoding::Mulaw as i32, sample_rate: 8000 }),
            stream_id: String::new(),
        })),
    })
    .await
    .unwrap();
    let mut media = client.media(ReceiverStream::new(rx)).await.unwrap().into_inner();
    assert!(matches!(media.next().await.unwrap().unwrap().event, Some(media_out::Event::Started(_))));
    // Two seconds of audio, then S3 goes away, then the caller hangs up.
    for i in 0..100u64 {
        let frame = pb::AudioFrame { payload: vec![0x55; 160], timestamp_ms: i * 20, sequence: i };
        tx.send(pb::MediaIn { event: Some(media_in::Event::Audio(frame)) }).await.unwrap();
    }
    s3.kill();
    tx.send(pb::MediaIn { event: Some(media_in::Event::Hangup(pb::Hangup { reason: "caller_hangup".into() })) })
        .await
        .unwrap();

    let get = async |calls: &mut bpb::call_service_client::CallServiceClient<Channel>| {
        calls.get_call(authed(&admin, bpb::GetCallRequest { id: call.id.clone() })).await.unwrap().into_inner()
    };
    until("the call completed", async || (get(&mut calls).await.state() == bpb::CallState::Completed).then_some(()))
        .await;
    until("a failed upload attempt in the worker's log", async || {
        std::fs::read_to_string(&worker.stderr_path)
            .unwrap()
            .contains("recording upload failed; it stays in the spool")
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(get(&mut calls).await.recording.is_none(), "no recording to point at while S3 is down");
    let wav = spool.join(format!("{}.wav", call.id));
    assert!(wav.is_file() && spool.join(format!("{}.json", call.id)).is_file(), "the recording waits in the spool");
    let logs = worker.logs();
    assert!(!logs.contains(SK), "the worker never logs the S3 secret key");

    // S3 comes back (same port, same data): the retry lands it.
    let _s3 = start_s3(port, &s3_root, dir.path()).await;
    let back = std::time::Instant::now();
    let done = until("the call pointing at its recording", async || get(&mut calls).await.recording).await;
    eprintln!("S3 back to the call pointing at its recording: {:?}", back.elapsed());
    // Two seconds of caller audio; the echo's side may run on a little under load.
    assert!(done.duration_ms >= 2000, "{}", done.duration_ms);
    assert!(!wav.exists(), "the spool lets go of it only once stored");
    let store = vox_blob_s3::S3Store::new(vox_blob_s3::S3Settings {
        endpoint_url: format!("http://127.0.0.1:{port}"),
        bucket: "recordings".into(),
        access_key: AK.into(),
        secret_key: SK.into(),
        signing_region: "us-east-1".into(),
        force_path_style: true,
        create_bucket: false,
        part_size: vox_blob_s3::DEFAULT_PART_SIZE,
    })
    .unwrap();
    assert_eq!(store.list("").await.unwrap(), vec![done.key.clone()], "exactly one object");
    let info = store.head(&done.key).await.unwrap().unwrap();
    assert_eq!(info.size_bytes, done.size_bytes);
}
