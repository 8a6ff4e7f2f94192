//! Peers that stop reading (issue 12, item 9): a gateway that never polls the call's
//! response stream, and an external agent server that never reads its socket. Either
//! would once stall the call's loop and its watchdogs for good, holding the worker; now
//! the call ends within the send timeout with a reason that says why, and the worker
//! takes the next call.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Bearer, Client, Cluster, client, new_call, start_worker, until};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::interceptor::InterceptedService;
use vox_proto::common::v1 as common_pb;
use vox_proto::fleet::v1::worker_service_client::WorkerServiceClient;
use vox_proto::fleet::v1::{self as pb, media_in, media_out};
use vox_testkit::ServerProcess;

/// The send timeout (2 s) plus generous slack for a loaded machine.
const BOUND: Duration = Duration::from_secs(10);

/// 20 ms of audio.
fn audio(i: u64) -> pb::MediaIn {
    audio_of(i, 160)
}

/// `samples` of μ-law audio, numbered `i`.
fn audio_of(i: u64, samples: usize) -> pb::MediaIn {
    let payload = vox_audio::mulaw::encode(&vec![(i as i16 % 40 - 20) * 700; samples]);
    pb::MediaIn { event: Some(media_in::Event::Audio(pb::AudioFrame { payload, timestamp_ms: i * 20, sequence: i })) }
}

async fn reserve(c: &mut Client, call_id: &str, agent: Option<common_pb::AgentSettings>) -> String {
    let req = pb::ReserveRequest { call_id: call_id.into(), ttl_ms: 5000, agent, ..Default::default() };
    c.reserve(req).await.unwrap().into_inner().reservation_id
}

/// Opens the call's media stream on `c` and reads up to `started`.
async fn open(c: &mut Client, call_id: &str, agent: Option<common_pb::AgentSettings>) -> Call {
    let reservation = reserve(c, call_id, agent).await;
    let (tx, rx) = mpsc::channel(64);
    tx.send(vox_testkit::mulaw_start(&reservation, call_id)).await.unwrap();
    let mut rx = c.media(ReceiverStream::new(rx)).await.unwrap().into_inner();
    let first = tokio::time::timeout(BOUND, rx.next()).await.unwrap().unwrap().unwrap();
    assert!(matches!(first.event, Some(media_out::Event::Started(_))), "{first:?}");
    Call { tx, rx }
}

struct Call {
    tx: mpsc::Sender<pb::MediaIn>,
    rx: tonic::Streaming<pb::MediaOut>,
}

impl Call {
    /// One frame out and its echo back: the worker serves calls.
    async fn echoes(&mut self) {
        self.tx.send(audio(7)).await.unwrap();
        let back = tokio::time::timeout(BOUND, self.rx.next()).await.unwrap().unwrap().unwrap();
        assert!(matches!(back.event, Some(media_out::Event::Audio(_))), "{back:?}");
    }
}

async fn calls_on(c: &mut Client) -> u32 {
    c.status(pb::StatusRequest {}).await.unwrap().into_inner().worker_calls
}

/// A worker on TCP with the cluster's fleet node secret, so a gateway connection can be
/// tuned (a 4 KiB stream window) the way a slow gateway's would be.
async fn tcp_worker(cluster: &Cluster, dir: &Path) -> ServerProcess {
    let args: Vec<String> = ["worker", "--listen", "127.0.0.1:0", "--log-format", "json", "--spool-dir"]
        .map(String::from)
        .into_iter()
        .chain([dir.join("spool").display().to_string(), "--bridge-url".into(), cluster.bridge.url()])
        .collect();
    start_worker("voxcore", &args, &[("VOX_NODE_SECRET", cluster.fleet_secret.clone())], dir).await
}

#[tokio::test]
async fn a_gateway_that_stops_reading_ends_the_call_and_frees_the_worker() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path()).await;
    let worker = tcp_worker(&cluster, dir.path()).await;
    let token = cluster.worker_token().await;
    let mut gateway = client(&worker.endpoint, Bearer::new(&token));
    until("the worker accepting the gateway's token", async || {
        gateway.clone().status(pb::StatusRequest {}).await.ok().map(|_| ())
    })
    .await;

    // A gateway that takes the response headers and then never reads the stream: its
    // 4 KiB window fills after a few dozen echoed frames.
    let channel = tonic::transport::Endpoint::from_shared(worker.endpoint.clone())
        .unwrap()
        .initial_stream_window_size(Some(4096))
        .connect()
        .await
        .unwrap();
    let mut slow = WorkerServiceClient::new(InterceptedService::new(channel, Bearer::new(&token)));
    let call_id = new_call();
    let reservation = reserve(&mut gateway, &call_id, None).await;
    let (tx, rx) = mpsc::channel(64);
    tx.send(vox_testkit::mulaw_start(&reservation, &call_id)).await.unwrap();
    let never_read = slow.media(ReceiverStream::new(rx)).await.unwrap();
    assert_eq!(calls_on(&mut gateway).await, 1);

    // The caller keeps talking; the echo has nowhere to go.
    let started = Instant::now();
    let mut i = 0;
    let ended = loop {
        for _ in 0..20 {
            i += 1;
            let _ = tx.try_send(audio(i));
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if calls_on(&mut gateway).await == 0 {
            break started.elapsed();
        }
        assert!(started.elapsed() < BOUND, "the call still holds the worker after {:?}", started.elapsed());
    };
    assert!(ended >= Duration::from_secs(2), "not before the send timeout: {ended:?}");
    let logs = worker.logs();
    assert!(logs.contains("peer_not_reading"), "the call ends saying why:\n{logs}");
    drop(never_read);

    // The worker takes the next call.
    let mut next = open(&mut gateway, &new_call(), None).await;
    next.echoes().await;
}

#[tokio::test]
async fn an_agent_server_that_stops_reading_ends_the_call() {
    // The customer's agent server accepts the WebSocket, then never reads it again, with
    // a receive buffer of a few KiB. The worker's send buffer may grow to a few MiB, so
    // the caller sends a second of audio at a time (about 21 KiB to the agent) to fill it.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(2048).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(8).unwrap();
    let url = format!("ws://{}/agent", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(ws);
    });

    let dir = tempfile::tempdir().unwrap();
    let args: Vec<String> = ["worker", "--log-format", "json", "--socket-dir"]
        .map(String::from)
        .into_iter()
        .chain([dir.path().join("sock").display().to_string()])
        .chain(["--spool-dir".into(), dir.path().join("spool").display().to_string()])
        .chain(["--recordings-dir".into(), dir.path().join("recordings").display().to_string()])
        .collect();
    let worker = start_worker("voxcore", &args, &[], dir.path()).await;
    let mut gateway = client(&worker.endpoint, Bearer::none());
    let agent = common_pb::AgentSettings {
        kind: common_pb::AgentKind::External as i32,
        external_url: url,
        ..Default::default()
    };
    let mut call = open(&mut gateway, &new_call(), Some(agent)).await;

    let started = Instant::now();
    let mut i = 0;
    let hangup = loop {
        tokio::select! {
            out = call.rx.next() => match out {
                Some(Ok(pb::MediaOut { event: Some(media_out::Event::Hangup(h)) })) => break h.reason,
                Some(Ok(_)) => {}
                other => panic!("the stream ended without a hangup: {other:?}"),
            },
            _ = tokio::time::sleep(Duration::from_millis(5)) => {
                i += 1;
                let _ = call.tx.try_send(audio_of(i, 8000));
            }
        }
        assert!(started.elapsed() < BOUND, "the call still runs after {:?}", started.elapsed());
    };
    assert_eq!(hangup, "agent_error:not_reading");
    until("the slot free again", async || (calls_on(&mut gateway).await == 0).then_some(())).await;
    server.abort();

    let mut next = open(&mut gateway, &new_call(), None).await;
    next.echoes().await;
}
