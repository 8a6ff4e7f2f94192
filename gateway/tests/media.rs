//! Calls through voxgate as a carrier makes them: real voxbridge, a real fleet host of
//! voxcore workers, real voxgate, and a Twilio-protocol client over WebSocket.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tonic::Request;
use tonic::transport::Channel;
use vox_proto::backend::v1 as bpb;
use vox_proto::common::v1 as common;
use vox_testkit::ServerProcess;

const TOKEN: &str = "twilio-test-auth-token";

struct Cluster {
    dir: tempfile::TempDir,
    bridge: ServerProcess,
    _host: ServerProcess,
    gate: ServerProcess,
    channel: Channel,
    admin: String,
    region: String,
}

fn authed<T>(token: &str, msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

async fn until<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..200 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn cluster(workers: u32) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let envs = [
        ("VOX_ADMIN_EMAIL", "admin@vox.test".to_string()),
        ("VOX_ADMIN_PASSWORD", "admin password for tests".to_string()),
    ];
    let bridge_args: Vec<String> = ["--listen", "127.0.0.1:0", "--heartbeat-interval-ms", "500", "--data-dir"]
        .map(String::from)
        .into_iter()
        .chain([dir.path().join("bridge").display().to_string()])
        .collect();
    let bridge = ServerProcess::start(
        "voxbridge",
        &vox_testkit::workspace_binary("voxbridge", "voxbridge"),
        &bridge_args,
        &envs,
        dir.path(),
    )
    .await
    .unwrap();
    let channel = Channel::from_shared(bridge.url()).unwrap().connect().await.unwrap();
    let admin = bpb::auth_service_client::AuthServiceClient::new(channel.clone())
        .login(bpb::LoginRequest { email: "admin@vox.test".into(), password: "admin password for tests".into() })
        .await
        .unwrap()
        .into_inner()
        .access_token;
    let region = bpb::region_service_client::RegionServiceClient::new(channel.clone())
        .create_region(authed(
            &admin,
            bpb::CreateRegionRequest { name: "us-east-1".into(), country: "US".into(), storage: None },
        ))
        .await
        .unwrap()
        .into_inner()
        .id;
    let mut nodes = bpb::node_service_client::NodeServiceClient::new(channel.clone());
    let register = async |nodes: &mut bpb::node_service_client::NodeServiceClient<Channel>, kind: bpb::NodeKind| {
        nodes
            .register_node(authed(
                &admin,
                bpb::RegisterNodeRequest {
                    kind: kind as i32,
                    region_id: region.clone(),
                    endpoint: "http://127.0.0.1:1".into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
    };
    let fleet = register(&mut nodes, bpb::NodeKind::Fleet).await;
    let gateway = register(&mut nodes, bpb::NodeKind::Gateway).await;

    let host_args: Vec<String> = vec![
        "host".into(),
        "--workers".into(),
        workers.to_string(),
        "--socket-dir".into(),
        dir.path().join("sock").display().to_string(),
        "--spool-dir".into(),
        dir.path().join("spool").display().to_string(),
        "--recordings-dir".into(),
        dir.path().join("recordings").display().to_string(),
        "--bridge-url".into(),
        bridge.url(),
    ];
    let host = ServerProcess::spawn(
        "voxcore-host",
        &vox_testkit::workspace_binary("voxcore", "voxcore"),
        &host_args,
        &[("VOX_NODE_SECRET", fleet.api_secret.clone())],
        dir.path(),
    )
    .unwrap();
    let fleet_id = fleet.node.unwrap().id;
    until("the fleet online", async || {
        let n =
            nodes.get_node(authed(&admin, bpb::GetNodeRequest { id: fleet_id.clone() })).await.unwrap().into_inner();
        (n.online && n.workers.len() == workers as usize).then_some(())
    })
    .await;

    let gate_args: Vec<String> = ["--listen", "127.0.0.1:0", "--log-format", "json", "--bridge-url"]
        .map(String::from)
        .into_iter()
        .chain([bridge.url()])
        .collect();
    let gate_env = [("VOX_NODE_SECRET", gateway.api_secret.clone()), ("TWILIO_AUTH_TOKEN", TOKEN.to_string())];
    let gate =
        ServerProcess::start("voxgate", Path::new(env!("CARGO_BIN_EXE_voxgate")), &gate_args, &gate_env, dir.path())
            .await
            .unwrap();
    let c = Cluster { dir, bridge, _host: host, gate, channel, admin, region };
    until("the gateway sees every slot", async || (c.fleet_health().await["fleet_available"] == workers).then_some(()))
        .await;
    c
}

impl Cluster {
    async fn fleet_health(&self) -> Value {
        reqwest::get(format!("{}/health/fleet", self.gate.url())).await.unwrap().json().await.unwrap()
    }

    async fn inbound_call(&self) -> String {
        bpb::call_service_client::CallServiceClient::new(self.channel.clone())
            .create_inbound_call(authed(
                &self.admin,
                bpb::CreateInboundCallRequest {
                    region_id: self.region.clone(),
                    channel: common::Channel::Phone as i32,
                    from_number: "+14155550199".into(),
                    to_number: "+14155550100".into(),
                    provider_call_id: "CA-test".into(),
                    campaign_id: String::new(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .id
    }

    async fn call(&self, id: &str) -> bpb::Call {
        bpb::call_service_client::CallServiceClient::new(self.channel.clone())
            .get_call(authed(&self.admin, bpb::GetCallRequest { id: id.into() }))
            .await
            .unwrap()
            .into_inner()
    }

    fn stream_url(&self) -> String {
        format!("ws://{}/media/twilio", self.gate.addr)
    }

    /// Opens a signed Twilio media stream; Err(status) when the gateway refuses it.
    async fn connect(&self, signature_token: &str) -> Result<Ws, (u16, Option<String>)> {
        let url = self.stream_url();
        let mut req = url.as_str().into_client_request().unwrap();
        let sig = voxgate::media::twilio::signature(signature_token, &url, &[]);
        req.headers_mut().insert("x-twilio-signature", sig.parse().unwrap());
        match tokio_tungstenite::connect_async(req).await {
            Ok((ws, _)) => Ok(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                let retry = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
                Err((resp.status().as_u16(), retry))
            }
            Err(e) => panic!("connect: {e}"),
        }
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

async fn start(ws: &mut Ws, call_id: &str) {
    send(ws, json!({"event": "connected", "protocol": "Call", "version": "1.0.0"})).await;
    send(
        ws,
        json!({"event": "start", "sequenceNumber": "1", "streamSid": "MZ1", "start": {
        "streamSid": "MZ1", "accountSid": "AC1", "callSid": "CA1", "tracks": ["inbound"],
        "customParameters": {"call_id": call_id},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}),
    )
    .await;
}

fn frame(i: usize) -> Vec<u8> {
    vox_audio::mulaw::encode(&[(i as i16 % 50 - 25) * 600; 160])
}

async fn media(ws: &mut Ws, i: usize) {
    use base64::Engine;
    let payload = base64::engine::general_purpose::STANDARD.encode(frame(i));
    send(ws, json!({"event": "media", "sequenceNumber": (i + 2).to_string(), "streamSid": "MZ1",
        "media": {"track": "inbound", "chunk": (i + 1).to_string(), "timestamp": (i * 20).to_string(), "payload": payload}}))
    .await;
}

/// The next text frame as JSON, or the close frame's (code, reason).
async fn recv(ws: &mut Ws) -> Result<Value, (u16, String)> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("gateway answered within 10 s") {
            Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(t.as_str()).unwrap()),
            Some(Ok(Message::Close(c))) => {
                return Err(c.map(|c| (u16::from(c.code), c.reason.to_string())).unwrap_or((1005, String::new())));
            }
            Some(Ok(_)) => continue,
            None => return Err((1006, "closed".into())),
            Some(Err(e)) => return Err((1006, e.to_string())),
        }
    }
}

#[tokio::test]
async fn a_twilio_stream_reaches_an_echo_worker_and_is_recorded() {
    let c = cluster(2).await;
    let call_id = c.inbound_call().await;
    let mut ws = c.connect(TOKEN).await.unwrap();
    start(&mut ws, &call_id).await;
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    for i in 0..50 {
        media(&mut ws, i).await;
        let v = recv(&mut ws).await.unwrap();
        assert_eq!(v["event"], "media", "{v}");
        assert_eq!(v["streamSid"], "MZ1");
        assert_eq!(b64.decode(v["media"]["payload"].as_str().unwrap()).unwrap(), frame(i), "frame {i} back in order");
    }
    send(&mut ws, json!({"event": "dtmf", "streamSid": "MZ1", "sequenceNumber": "60", "dtmf": {"track": "inbound_track", "digit": "3"}})).await;
    let mark = recv(&mut ws).await.unwrap();
    assert_eq!((mark["event"].as_str(), mark["mark"]["name"].as_str()), (Some("mark"), Some("dtmf-3")));
    send(&mut ws, json!({"event": "mark", "streamSid": "MZ1", "sequenceNumber": "61", "mark": {"name": "dtmf-3"}}))
        .await;
    assert_eq!(c.call(&call_id).await.state(), bpb::CallState::InProgress);
    let busy = c.fleet_health().await;
    assert_eq!(busy["fleet_available"], 1, "{busy}");

    send(&mut ws, json!({"event": "stop", "streamSid": "MZ1", "sequenceNumber": "62", "stop": {"accountSid": "AC1", "callSid": "CA1"}})).await;
    let (code, _) = recv(&mut ws).await.unwrap_err();
    assert_eq!(code, 1000);
    let done = until("the call completed with its recording", async || {
        let call = c.call(&call_id).await;
        (call.state() == bpb::CallState::Completed && call.recording.is_some()).then_some(call)
    })
    .await;
    let rec = done.recording.unwrap();
    assert_eq!(rec.duration_ms, 1000, "50 frames of 20 ms");
    assert!(c.dir.path().join("recordings").join(&rec.key).is_file());
    until("the slot free again", async || (c.fleet_health().await["fleet_available"] == 2).then_some(())).await;
    let metrics = reqwest::get(format!("{}/metrics", c.gate.url())).await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"voxgate_media_frames_total{direction="carrier_to_worker"} 50"#), "{metrics}");
    assert!(metrics.contains("voxgate_reservations_total 1"), "{metrics}");
    drop(c.bridge);
}

#[tokio::test]
async fn four_workers_six_calls_four_connect_two_get_503() {
    let c = cluster(4).await;
    let mut calls = Vec::new();
    for _ in 0..6 {
        calls.push(c.inbound_call().await);
    }
    let attempts = futures::future::join_all((0..6).map(|_| c.connect(TOKEN))).await;
    let mut open = Vec::new();
    let mut refused = 0;
    for a in attempts {
        match a {
            Ok(ws) => open.push(ws),
            Err((status, retry_after)) => {
                assert_eq!(status, 503);
                assert_eq!(retry_after.as_deref(), Some("1"));
                refused += 1;
            }
        }
    }
    assert_eq!((open.len(), refused), (4, 2));
    for (ws, call_id) in open.iter_mut().zip(&calls) {
        start(ws, call_id).await;
        media(ws, 1).await;
        assert_eq!(recv(ws).await.unwrap()["event"], "media");
    }
    let health = c.fleet_health().await;
    assert_eq!(health["fleet_available"], 0);
    let workers = health["workers"].as_array().unwrap();
    assert!(workers.iter().all(|w| w["worker_calls"].as_u64().unwrap() <= 1), "no worker holds two calls: {health}");
    let mut attached: Vec<(String, u32)> = Vec::new();
    for id in &calls[..4] {
        let call = c.call(id).await;
        assert_eq!(call.state(), bpb::CallState::InProgress);
        attached.push((call.node_id, call.worker_index));
    }
    attached.sort();
    attached.dedup();
    assert_eq!(attached.len(), 4, "four calls on four different workers");

    // A freed slot is reused.
    let mut first = open.remove(0);
    send(&mut first, json!({"event": "stop", "streamSid": "MZ1", "stop": {}})).await;
    let _ = recv(&mut first).await;
    until("a slot free again", async || (c.fleet_health().await["fleet_available"] == 1).then_some(())).await;
    let mut again = c.connect(TOKEN).await.expect("the freed slot takes a new call");
    start(&mut again, &calls[4]).await;
    media(&mut again, 2).await;
    assert_eq!(recv(&mut again).await.unwrap()["event"], "media");
}

#[tokio::test]
async fn bad_input_gets_a_clear_answer_and_breaks_nothing() {
    let c = cluster(1).await;
    // Wrong signature: refused before the upgrade.
    assert_eq!(c.connect("not the token").await.unwrap_err().0, 403);
    // A plain GET or POST is no WebSocket and gets a plain answer.
    let plain = reqwest::get(c.stream_url().replace("ws://", "http://")).await.unwrap();
    assert_eq!(plain.status(), 426);
    let post = reqwest::Client::new().post(format!("{}/health/fleet", c.gate.url())).send().await.unwrap();
    assert_eq!(post.status(), 405);

    let mut ws = c.connect(TOKEN).await.unwrap();
    ws.send(Message::text("{not json")).await.unwrap();
    let (code, reason) = recv(&mut ws).await.unwrap_err();
    assert_eq!(code, 1008);
    assert!(reason.contains("malformed JSON"), "{reason}");

    let mut ws = c.connect(TOKEN).await.unwrap();
    start(&mut ws, "ca_doesnotexist0000").await;
    let (code, reason) = recv(&mut ws).await.unwrap_err();
    assert_eq!(code, 1008);
    assert!(reason.contains("unknown call id"), "{reason}");

    let mut ws = c.connect(TOKEN).await.unwrap();
    send(&mut ws, json!({"event": "dance"})).await;
    let (_, reason) = recv(&mut ws).await.unwrap_err();
    assert!(reason.contains("expected start") || reason.contains("unknown event"), "{reason}");

    let call_id = c.inbound_call().await;
    let mut ws = c.connect(TOKEN).await.unwrap();
    start(&mut ws, &call_id).await;
    media(&mut ws, 0).await;
    assert_eq!(recv(&mut ws).await.unwrap()["event"], "media");
    ws.send(Message::text(
        json!({"event": "media", "streamSid": "MZ1", "media": {"payload": "A".repeat(100_000)}}).to_string(),
    ))
    .await
    .unwrap();
    let (code, _) = recv(&mut ws).await.unwrap_err();
    assert_ne!(code, 1000, "an oversize frame closes the stream with an error code");

    // None of that took the gateway down or leaked the slot.
    until("the slot free again", async || (c.fleet_health().await["fleet_available"] == 1).then_some(())).await;
    let health: Value = reqwest::get(format!("{}/health", c.gate.url())).await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok");
}
