//! voxcore workers as real processes: media round trips, slot rules, watchdogs, crash
//! recovery of recordings, prompts and external agents. These workers have no voxbridge,
//! so they serve their Unix socket only (owner-only), without credentials.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic::transport::Channel;
use vox_proto::common::v1 as common;
use vox_proto::fleet::v1::worker_service_client::WorkerServiceClient;
use vox_proto::fleet::v1::{self as pb, media_in, media_out};
use vox_testkit::ServerProcess;

struct Worker {
    process: ServerProcess,
    dir: tempfile::TempDir,
    client: WorkerServiceClient<Channel>,
}

impl Worker {
    fn spool(&self) -> PathBuf {
        self.dir.path().join("spool")
    }
    fn recordings(&self) -> PathBuf {
        self.dir.path().join("recordings")
    }
    fn socket(&self) -> PathBuf {
        PathBuf::from(self.process.endpoint.strip_prefix("unix://").unwrap())
    }
}

/// A call id of the id alphabet, as voxbridge makes them.
fn new_call() -> String {
    vox_domain::ids::new_id(vox_domain::ids::CALL)
}

async fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> Worker {
    let mut args: Vec<String> = vec![
        "worker".into(),
        "--socket-dir".into(),
        dir.path().join("sock").display().to_string(),
        "--spool-dir".into(),
        dir.path().join("spool").display().to_string(),
        "--recordings-dir".into(),
        dir.path().join("recordings").display().to_string(),
        "--log-format".into(),
        "json".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let process =
        ServerProcess::start_listening("voxcore", Path::new(env!("CARGO_BIN_EXE_voxcore")), &args, &[], dir.path())
            .await
            .unwrap();
    let client = WorkerServiceClient::new(vox_node::channel::connect_lazy(&process.endpoint).unwrap());
    Worker { process, dir, client }
}

async fn start(extra: &[&str]) -> Worker {
    start_in(tempfile::tempdir().unwrap(), extra).await
}

fn reserve_req(call_id: &str, agent: Option<common::AgentSettings>) -> pb::ReserveRequest {
    pb::ReserveRequest { call_id: call_id.into(), ttl_ms: 5000, agent, ..Default::default() }
}

fn mulaw() -> pb::AudioFormat {
    pb::AudioFormat { encoding: pb::AudioEncoding::Mulaw as i32, sample_rate: 8000 }
}

/// An open media stream: send with `tx`, read with `rx`.
struct Call {
    tx: mpsc::Sender<pb::MediaIn>,
    rx: tonic::Streaming<pb::MediaOut>,
}

impl Call {
    async fn send(&self, event: media_in::Event) {
        self.tx.send(pb::MediaIn { event: Some(event) }).await.unwrap();
    }

    async fn next(&mut self) -> Option<media_out::Event> {
        tokio::time::timeout(Duration::from_secs(10), self.rx.next())
            .await
            .expect("worker answered within 10 s")
            .map(|m| m.unwrap().event.unwrap())
    }
}

async fn open(client: &mut WorkerServiceClient<Channel>, call_id: &str, agent: Option<common::AgentSettings>) -> Call {
    let r = client.reserve(reserve_req(call_id, agent)).await.unwrap().into_inner();
    let (tx, rx) = mpsc::channel(256);
    tx.send(pb::MediaIn {
        event: Some(media_in::Event::Start(pb::MediaStart {
            reservation_id: r.reservation_id,
            call_id: call_id.into(),
            format: Some(mulaw()),
            stream_id: "MZ-test".into(),
        })),
    })
    .await
    .unwrap();
    let rx = client.media(ReceiverStream::new(rx)).await.unwrap().into_inner();
    let mut call = Call { tx, rx };
    assert!(matches!(call.next().await, Some(media_out::Event::Started(_))));
    call
}

/// A distinct, canonical μ-law frame per index.
fn frame(i: usize) -> Vec<u8> {
    vox_audio::mulaw::encode(&[(i as i16 % 60 - 30) * 500; 160])
}

fn audio(i: usize) -> media_in::Event {
    media_in::Event::Audio(pb::AudioFrame { payload: frame(i), timestamp_ms: i as u64 * 20, sequence: i as u64 })
}

/// Waits for the uploaded recording of `call_id` under `root`.
async fn uploaded(root: &Path, call_id: &str) -> PathBuf {
    for _ in 0..200 {
        if let Some(p) = find(root, &format!("{call_id}.wav")) {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no recording for {call_id} under {}", root.display());
}

fn find(dir: &Path, name: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()? {
        let path = entry.ok()?.path();
        if path.is_dir() {
            if let Some(found) = find(&path, name) {
                return Some(found);
            }
        } else if path.file_name().is_some_and(|n| n == name) {
            return Some(path);
        }
    }
    None
}

#[tokio::test]
async fn echo_round_trip_is_recorded_in_stereo() {
    let mut w = start(&[]).await;
    let echo = new_call();
    let mut call = open(&mut w.client, &echo, None).await;
    for i in 0..50 {
        call.send(audio(i)).await;
        match call.next().await {
            Some(media_out::Event::Audio(a)) => {
                assert_eq!(a.payload, frame(i), "frame {i} echoed unchanged and in order");
                assert_eq!(a.sequence, i as u64);
            }
            other => panic!("expected audio, got {other:?}"),
        }
    }
    call.send(media_in::Event::Dtmf(pb::Dtmf { digit: "5".into(), duration_ms: 100 })).await;
    assert_eq!(call.next().await, Some(media_out::Event::Mark(pb::Mark { name: "dtmf-5".into() })));

    // One slot, one call: the next reservation is refused before any side effect.
    let busy = w.client.reserve(reserve_req(&new_call(), None)).await.unwrap_err();
    assert_eq!(busy.code(), Code::ResourceExhausted);
    let status = w.client.status(pb::StatusRequest {}).await.unwrap().into_inner();
    assert_eq!((status.worker_calls, status.worker_max, status.call_id.as_str()), (1, 1, echo.as_str()));
    assert_eq!(status.state, common::WorkerState::InCall as i32);

    call.send(media_in::Event::Hangup(pb::Hangup { reason: String::new() })).await;
    assert_eq!(call.next().await, None, "the stream ends after hangup");

    let wav = uploaded(&w.recordings(), &echo).await;
    let bytes = std::fs::read(&wav).unwrap();
    assert_eq!(u16::from_le_bytes([bytes[22], bytes[23]]), 2, "stereo");
    let data_len = u32::from_le_bytes(bytes[40..44].try_into().unwrap());
    assert_eq!(data_len, 50 * 160 * 4, "one second of caller and agent audio");
    let left = vox_audio::wav::read_prompt(&bytes).unwrap().samples;
    assert_eq!(&left[..160], vox_audio::mulaw::decode(&frame(0)).as_slice(), "the caller is on the left channel");
    for _ in 0..100 {
        if std::fs::read_dir(w.spool()).unwrap().next().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        std::fs::read_dir(w.spool()).unwrap().next().is_none(),
        "the spool is emptied once the upload is confirmed"
    );
    assert_eq!(w.client.status(pb::StatusRequest {}).await.unwrap().into_inner().worker_calls, 0);
    w.client.reserve(reserve_req(&new_call(), None)).await.unwrap();
}

#[tokio::test]
async fn draining_refuses_new_calls_and_sigterm_waits_for_the_call() {
    let mut w = start(&["--max-concurrent-calls", "2"]).await;
    let mut call = open(&mut w.client, &new_call(), None).await;
    let new = new_call();
    w.client.drain(pb::DrainRequest { exit_when_idle: false }).await.unwrap();
    assert_eq!(w.client.reserve(reserve_req(&new, None)).await.unwrap_err().code(), Code::Unavailable);
    w.client.resume(pb::ResumeRequest {}).await.unwrap();
    let spare = w.client.reserve(reserve_req(&new, None)).await.unwrap().into_inner();
    w.client.release(pb::ReleaseRequest { reservation_id: spare.reservation_id }).await.unwrap();

    // SIGTERM: the live call carries on; the worker exits once it ends.
    let pid = w.process.pid().unwrap();
    std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    call.send(audio(1)).await;
    assert!(matches!(call.next().await, Some(media_out::Event::Audio(_))), "the call still flows after SIGTERM");
    assert_eq!(w.client.reserve(reserve_req(&new_call(), None)).await.unwrap_err().code(), Code::Unavailable);
    call.send(media_in::Event::Hangup(pb::Hangup { reason: "caller_hangup".into() })).await;
    let status = w.process.wait_exit(Duration::from_secs(10)).await.unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn watchdogs_free_the_slot_without_a_restart() {
    let mut w = start(&["--no-media-timeout-seconds", "1"]).await;
    let mut call = open(&mut w.client, &new_call(), None).await;
    // The leg died: no audio arrives.
    let started = std::time::Instant::now();
    assert_eq!(call.next().await, Some(media_out::Event::Hangup(pb::Hangup { reason: "watchdog:no_media".into() })));
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(call.next().await, None);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(w.client.status(pb::StatusRequest {}).await.unwrap().into_inner().worker_calls, 0);

    // A reservation nobody uses expires and frees the slot.
    let unused_call = new_call();
    let unused = w
        .client
        .reserve(pb::ReserveRequest { call_id: unused_call.clone(), ttl_ms: 300, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(w.client.reserve(reserve_req(&new_call(), None)).await.unwrap_err().code(), Code::ResourceExhausted);
    tokio::time::sleep(Duration::from_millis(700)).await;
    w.client.reserve(reserve_req(&new_call(), None)).await.unwrap();
    let (tx, rx) = mpsc::channel(4);
    tx.send(pb::MediaIn {
        event: Some(media_in::Event::Start(pb::MediaStart {
            reservation_id: unused.reservation_id,
            call_id: unused_call,
            format: Some(mulaw()),
            stream_id: String::new(),
        })),
    })
    .await
    .unwrap();
    let err = w.client.media(ReceiverStream::new(rx)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
}

/// The no-media watchdog is one timer re-armed when it fires, not one set per frame: a
/// call whose audio keeps coming outlives the timeout many times over, and is hung up
/// within about one timeout once its audio stops.
#[tokio::test]
async fn the_no_media_watchdog_spares_a_call_while_audio_flows() {
    let mut w = start(&["--no-media-timeout-seconds", "1"]).await;
    let mut call = open(&mut w.client, &new_call(), None).await;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for i in 0..150 {
        tick.tick().await;
        call.send(audio(i)).await;
        let echo = call.next().await;
        assert!(matches!(echo, Some(media_out::Event::Audio(_))), "frame {i} answered by {echo:?}");
    }
    let silent = std::time::Instant::now();
    assert_eq!(call.next().await, Some(media_out::Event::Hangup(pb::Hangup { reason: "watchdog:no_media".into() })));
    let waited = silent.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_millis(2500),
        "hung up {waited:?} after the audio stopped"
    );
}

#[tokio::test]
async fn bad_media_is_refused_clearly() {
    let mut w = start(&[]).await;
    let bad = new_call();
    let r = w.client.reserve(reserve_req(&bad, None)).await.unwrap().into_inner();
    let (tx, rx) = mpsc::channel(4);
    tx.send(pb::MediaIn { event: Some(audio(0)) }).await.unwrap();
    let err = w.client.media(ReceiverStream::new(rx)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("start"), "{}", err.message());
    let (tx, rx) = mpsc::channel(4);
    let pcm44 = pb::AudioFormat { encoding: pb::AudioEncoding::Pcm16le as i32, sample_rate: 44100 };
    tx.send(pb::MediaIn {
        event: Some(media_in::Event::Start(pb::MediaStart {
            reservation_id: r.reservation_id.clone(),
            call_id: bad.clone(),
            format: Some(pcm44),
            stream_id: String::new(),
        })),
    })
    .await
    .unwrap();
    let err = w.client.media(ReceiverStream::new(rx)).await.unwrap_err();
    assert!(err.message().starts_with("start.format:"), "{}", err.message());
    let err = w.client.reserve(pb::ReserveRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn a_killed_worker_keeps_its_partial_recording() {
    let mut w = start(&[]).await;
    let crash = new_call();
    let mut call = open(&mut w.client, &crash, None).await;
    // Two seconds at real pace, so the recording reaches the disk.
    for i in 0..100 {
        call.send(audio(i)).await;
        call.next().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    w.process.kill();
    assert!(find(&w.spool(), &format!("{crash}.wav")).is_some(), "the partial recording is in the spool");
    let dir = std::mem::replace(&mut w.dir, tempfile::tempdir().unwrap());
    drop(w);

    let again = start_in(dir, &[]).await;
    let wav = uploaded(&again.recordings(), &crash).await;
    let info = vox_audio::wav::repair(&wav).unwrap();
    assert!(info.duration_ms >= 1000, "at least the flushed second survives: {info:?}");
    assert_eq!(info.channels, 2);
}

#[tokio::test]
async fn the_prompt_agent_plays_its_wav_then_answers_digits() {
    let mut w = start(&[]).await;
    let tone: Vec<i16> = (0..3200).map(|i| if (i / 20) % 2 == 0 { 4000 } else { -4000 }).collect();
    let prompt = w.recordings().join("prompts");
    std::fs::create_dir_all(&prompt).unwrap();
    std::fs::write(prompt.join("hello.wav"), vox_audio::wav::mono_wav_bytes(8000, &tone)).unwrap();
    let agent = common::AgentSettings {
        kind: common::AgentKind::Prompt as i32,
        prompt_key: "prompts/hello.wav".into(),
        external_url: String::new(),
        params: [("dtmf.9".to_string(), "hangup".to_string())].into(),
    };
    let mut call = open(&mut w.client, &new_call(), Some(agent)).await;
    let mut heard = Vec::new();
    loop {
        call.send(audio(0)).await;
        match call.next().await {
            Some(media_out::Event::Audio(a)) => heard.extend(vox_audio::mulaw::decode(&a.payload)),
            Some(media_out::Event::Mark(m)) => {
                assert_eq!(m.name, "prompt-end");
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(heard.len(), tone.len(), "the whole prompt, once");
    assert_eq!(heard, vox_audio::mulaw::decode(&vox_audio::mulaw::encode(&tone)));
    call.send(media_in::Event::Dtmf(pb::Dtmf { digit: "9".into(), duration_ms: 80 })).await;
    assert_eq!(call.next().await, Some(media_out::Event::Hangup(pb::Hangup { reason: "agent_hangup:dtmf-9".into() })));
}

#[tokio::test]
async fn the_external_agent_relays_to_a_websocket_server() {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;

    // A customer's agent server: answers each media frame with its samples negated, and
    // hangs up on '#'.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/agent", listener.local_addr().unwrap());
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        while let Some(Ok(Message::Text(text))) = futures::StreamExt::next(&mut ws).await {
            let v: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
            let event = v["event"].as_str().unwrap().to_string();
            seen_tx.send(event.clone()).unwrap();
            use base64::Engine;
            let b64 = base64::engine::general_purpose::STANDARD;
            let reply = match event.as_str() {
                "media" => {
                    let samples = vox_audio::pcm16le_to_samples(&b64.decode(v["payload"].as_str().unwrap()).unwrap());
                    let negated: Vec<i16> = samples.iter().map(|s| s.saturating_neg()).collect();
                    Some(
                        serde_json::json!({"event": "media", "payload": b64.encode(vox_audio::samples_to_pcm16le(&negated))}),
                    )
                }
                "dtmf" if v["digit"] == "#" => Some(serde_json::json!({"event": "hangup", "reason": "bye"})),
                _ => None,
            };
            if let Some(r) = reply {
                ws.send(Message::text(r.to_string())).await.unwrap();
            }
        }
    });
    let agent =
        common::AgentSettings { kind: common::AgentKind::External as i32, external_url: url, ..Default::default() };
    let (mut client, _worker) = w_client().await;
    let mut call = open(&mut client, &new_call(), Some(agent)).await;
    assert_eq!(seen_rx.recv().await.unwrap(), "start");
    call.send(audio(10)).await;
    match call.next().await {
        Some(media_out::Event::Audio(a)) => {
            let sent = vox_audio::mulaw::decode(&frame(10));
            let got = vox_audio::mulaw::decode(&a.payload);
            assert_eq!(got[0], -sent[0], "the agent's reply reaches the caller");
        }
        other => panic!("unexpected {other:?}"),
    }
    call.send(media_in::Event::Dtmf(pb::Dtmf { digit: "#".into(), duration_ms: 80 })).await;
    assert_eq!(call.next().await, Some(media_out::Event::Hangup(pb::Hangup { reason: "agent_hangup:bye".into() })));
}

/// A worker for tests that only need a client; the worker lives as long as the tuple.
async fn w_client() -> (WorkerServiceClient<Channel>, Worker) {
    let w = start(&[]).await;
    (w.client.clone(), w)
}

#[tokio::test]
async fn grpcurl_sees_the_worker_api_by_reflection() {
    let w = start(&[]).await;
    let grpcurl = vox_testkit::require_program("grpcurl", "install it with `bash ops/install-test-deps.sh`");
    let socket = w.socket().display().to_string();
    // grpc-go sends the socket path as :authority, which HTTP/2 servers refuse as malformed.
    let unix = ["-plaintext", "-unix", "-authority", "localhost", &socket];
    let out = std::process::Command::new(&grpcurl).args(unix).arg("list").output().unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(listed.contains("vox.fleet.v1.WorkerService") && listed.contains("grpc.health.v1.Health"), "{listed}");
    let out =
        std::process::Command::new(&grpcurl).args(unix).arg("vox.fleet.v1.WorkerService/Status").output().unwrap();
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(status.contains("\"workerMax\": 1"), "the seeds' worker_max over grpcurl: {status}");
}

#[tokio::test]
async fn without_voxbridge_only_the_owner_reaches_the_worker() {
    use std::os::unix::fs::PermissionsExt;
    let w = start(&[]).await;
    let mode = std::fs::metadata(w.socket()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the socket is the only gate: owner-only");

    // TCP needs voxbridge, whose tokens let gateways in; the worker says so and stops.
    let dir = tempfile::tempdir().unwrap();
    let args: Vec<String> = ["worker", "--listen", "127.0.0.1:0", "--spool-dir"]
        .map(String::from)
        .into_iter()
        .chain([dir.path().join("spool").display().to_string()])
        .collect();
    let mut p =
        ServerProcess::spawn("voxcore-tcp", Path::new(env!("CARGO_BIN_EXE_voxcore")), &args, &[], dir.path()).unwrap();
    let status = p.wait_exit(Duration::from_secs(10)).await.unwrap();
    assert!(!status.success());
    let logs = p.logs();
    assert!(logs.contains("needs voxbridge (--bridge-url and --node-secret)"), "{logs}");
    assert!(!dir.path().join("spool").exists(), "refused before touching anything");
}
