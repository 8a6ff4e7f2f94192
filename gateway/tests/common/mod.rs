//! A whole cluster for gateway tests: real voxbridge, real fleet hosts of voxcore
//! workers, real voxgate, and a Twilio-protocol client over WebSocket.
#![allow(dead_code, clippy::unwrap_used, reason = "shared by several test binaries; tests stop on failure")]

use std::path::Path;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tonic::transport::Channel;
use vox_proto::backend::v1 as bpb;
use vox_proto::common::v1 as common;
use vox_testkit::{ServerProcess, control};

pub const TOKEN: &str = "twilio-test-auth-token";
pub const LIVEKIT_KEY: &str = "APItestkey";
pub const LIVEKIT_SECRET: &str = "livekit-test-secret-of-some-length";

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub bridge: ServerProcess,
    pub hosts: Vec<ServerProcess>,
    /// The fleet node of each host, in order.
    pub fleet_nodes: Vec<String>,
    pub gate: ServerProcess,
    pub channel: Channel,
    pub admin: String,
    pub region: String,
}

pub use vox_testkit::control::authed;

/// The test admin's access token from the console REST API at `gate_url`.
pub async fn rest_login(gate_url: &str) -> String {
    let r: Value = reqwest::Client::new()
        .post(format!("{gate_url}/api/v1/auth/login"))
        .json(&json!({"email": control::ADMIN_EMAIL, "password": control::ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["access_token"].as_str().unwrap().to_string()
}

pub async fn until<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..200 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// One host of `workers` workers.
pub async fn cluster(workers: u32) -> Cluster {
    cluster_of(&[workers]).await
}

/// One fleet node and host per entry, each with that many workers.
pub async fn cluster_of(hosts: &[u32]) -> Cluster {
    cluster_with(hosts, &[]).await
}

/// [`cluster_of`] with extra environment for voxgate.
pub async fn cluster_with(hosts: &[u32], gate_extra_env: &[(&'static str, String)]) -> Cluster {
    cluster_hosts(hosts, |_| Vec::new(), gate_extra_env).await
}

/// [`cluster_with`] with extra arguments for each host (by its position).
pub async fn cluster_hosts(
    hosts: &[u32],
    host_extra_args: impl Fn(usize) -> Vec<String>,
    gate_extra_env: &[(&'static str, String)],
) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let bridge_args: Vec<String> = ["--listen", "127.0.0.1:0", "--heartbeat-interval-ms", "500", "--data-dir"]
        .map(String::from)
        .into_iter()
        .chain([dir.path().join("bridge").display().to_string()])
        // The folder the hosts below write recordings to, so voxbridge can play them back.
        .chain(["--recordings-dir".to_string(), dir.path().join("recordings").display().to_string()])
        .collect();
    let bridge = control::start_bridge("voxbridge", &bridge_args, dir.path()).await;
    let (channel, admin) = control::admin_session(&bridge.url()).await;
    let region = control::create_region(&channel, &admin, "us-east-1", None).await;
    let mut nodes = bpb::node_service_client::NodeServiceClient::new(channel.clone());
    let register = async |_: &mut bpb::node_service_client::NodeServiceClient<Channel>, kind: bpb::NodeKind| {
        control::register_node(&channel, &admin, &region, kind).await
    };
    let mut host_processes = Vec::new();
    let mut fleet_nodes = Vec::new();
    for (h, workers) in hosts.iter().enumerate() {
        let fleet = register(&mut nodes, bpb::NodeKind::Fleet).await;
        let host_args: Vec<String> = [
            "host".into(),
            "--workers".into(),
            workers.to_string(),
            "--socket-dir".into(),
            dir.path().join(format!("sock{h}")).display().to_string(),
            "--spool-dir".into(),
            dir.path().join(format!("spool{h}")).display().to_string(),
            "--recordings-dir".into(),
            dir.path().join("recordings").display().to_string(),
            "--bridge-url".into(),
            bridge.url(),
        ]
        .into_iter()
        .chain(host_extra_args(h))
        .collect();
        let host = ServerProcess::spawn(
            &format!("voxcore-host{h}"),
            &vox_testkit::workspace_binary("voxcore", "voxcore"),
            &host_args,
            &[("VOX_NODE_SECRET", fleet.api_secret.clone())],
            dir.path(),
        )
        .unwrap();
        let fleet_id = fleet.node.unwrap().id;
        until("the fleet online", async || {
            let n = nodes
                .get_node(authed(&admin, bpb::GetNodeRequest { id: fleet_id.clone() }))
                .await
                .unwrap()
                .into_inner();
            (n.online && n.workers.len() == *workers as usize).then_some(())
        })
        .await;
        host_processes.push(host);
        fleet_nodes.push(fleet_id);
    }
    let gateway = register(&mut nodes, bpb::NodeKind::Gateway).await;
    let gate = start_gate(dir.path(), "voxgate", &bridge.url(), &gateway.api_secret, &[], gate_extra_env).await;
    let total: u32 = hosts.iter().sum();
    let c = Cluster { dir, bridge, hosts: host_processes, fleet_nodes, gate, channel, admin, region };
    until("the gateway sees every slot", async || (c.fleet_health().await["fleet_available"] == total).then_some(()))
        .await;
    c
}

/// voxgate's arguments and environment as gateway node `secret` of the cluster at
/// `bridge_url`, with the test's Twilio and LiveKit credentials.
pub fn gate_command(
    bridge_url: &str,
    secret: &str,
    extra_args: &[String],
    extra_env: &[(&'static str, String)],
) -> (Vec<String>, Vec<(&'static str, String)>) {
    let args: Vec<String> = ["--listen", "127.0.0.1:0", "--log-format", "json", "--bridge-url", bridge_url]
        .map(String::from)
        .into_iter()
        .chain(extra_args.iter().cloned())
        .collect();
    let env = [
        ("VOX_NODE_SECRET", secret.to_string()),
        ("TWILIO_AUTH_TOKEN", TOKEN.to_string()),
        ("LIVEKIT_API_KEY", LIVEKIT_KEY.to_string()),
        ("LIVEKIT_API_SECRET", LIVEKIT_SECRET.to_string()),
    ];
    (args, env.into_iter().chain(extra_env.iter().cloned()).collect())
}

/// Starts voxgate ([`gate_command`]) and waits for its /health.
pub async fn start_gate(
    dir: &Path,
    name: &str,
    bridge_url: &str,
    secret: &str,
    extra_args: &[String],
    extra_env: &[(&'static str, String)],
) -> ServerProcess {
    let (args, env) = gate_command(bridge_url, secret, extra_args, extra_env);
    ServerProcess::start(name, Path::new(env!("CARGO_BIN_EXE_voxgate")), &args, &env, dir).await.unwrap()
}

/// `GET <gate_url>/health/fleet`.
pub async fn fleet_health_of(gate_url: &str) -> Value {
    reqwest::get(format!("{gate_url}/health/fleet")).await.unwrap().json().await.unwrap()
}

impl Cluster {
    pub async fn fleet_health(&self) -> Value {
        fleet_health_of(&self.gate.url()).await
    }

    /// Registers another gateway node in the cluster's region: its API secret.
    pub async fn register_gateway(&self) -> String {
        control::register_node(&self.channel, &self.admin, &self.region, bpb::NodeKind::Gateway).await.api_secret
    }

    /// A second gateway on the same voxbridge, once it sees every worker slot the first
    /// one sees.
    pub async fn second_gateway(&self, name: &str) -> ServerProcess {
        let secret = self.register_gateway().await;
        let gate = start_gate(self.dir.path(), name, &self.bridge.url(), &secret, &[], &[]).await;
        let workers = |h: &Value| h["workers"].as_array().map_or(0, Vec::len);
        let total = workers(&self.fleet_health().await);
        until("the second gateway sees every slot", async || {
            (workers(&fleet_health_of(&gate.url()).await) == total).then_some(())
        })
        .await;
        gate
    }

    /// A running campaign of this cluster's region, calling all day, with `numbers`: its id.
    /// `spec` sets anything else (name, caller id, agent).
    pub async fn running_campaign(&self, spec: bpb::CampaignSpec, numbers: &[&str]) -> String {
        let mut campaigns = bpb::campaign_service_client::CampaignServiceClient::new(self.channel.clone());
        let spec = bpb::CampaignSpec {
            region_id: self.region.clone(),
            window: Some(bpb::CallingWindow {
                time_zone: "UTC".into(),
                start: "00:00".into(),
                end: "24:00".into(),
                days: vec![],
            }),
            ..spec
        };
        let campaign = campaigns
            .create_campaign(authed(&self.admin, bpb::CreateCampaignRequest { spec: Some(spec) }))
            .await
            .unwrap()
            .into_inner()
            .id;
        let numbers = numbers.iter().map(|n| n.to_string()).collect();
        campaigns
            .add_numbers(authed(&self.admin, bpb::AddNumbersRequest { campaign_id: campaign.clone(), numbers }))
            .await
            .unwrap();
        campaigns
            .start_campaign(authed(&self.admin, bpb::CampaignActionRequest { id: campaign.clone() }))
            .await
            .unwrap();
        campaign
    }

    /// Opens a web session through `gate_url` as the admin: the reply (`call_id`, `token`,
    /// `ws_url`, …).
    pub async fn open_web_session(&self, gate_url: &str) -> Value {
        reqwest::Client::new()
            .post(format!("{gate_url}/web/sessions"))
            .bearer_auth(&self.admin)
            .json(&serde_json::json!({"sample_rate": 16000}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// An outbound call of a new campaign (echo agent) moved to `dialing` as a dialler
    /// does: leadership, a lease, then the move with the fencing term and lease token.
    pub async fn dialing_call(&self) -> String {
        let spec = bpb::CampaignSpec {
            name: "outbound test".into(),
            caller_id: "+15550000000".into(),
            agent: Some(common::AgentSettings { kind: common::AgentKind::Echo as i32, ..Default::default() }),
            weight: 1,
            max_concurrency: 5,
            ..Default::default()
        };
        let campaign = self.running_campaign(spec, &["+15551000001"]).await;
        let dialler = control::register_node(&self.channel, &self.admin, &self.region, bpb::NodeKind::Dialler).await;
        let secret = dialler.api_secret;
        let dialler_id = dialler.node.unwrap().id;
        let term = bpb::leadership_service_client::LeadershipServiceClient::new(self.channel.clone())
            .acquire_leadership(authed(
                &secret,
                bpb::AcquireLeadershipRequest { holder_id: dialler_id.clone(), ttl_seconds: 60 },
            ))
            .await
            .unwrap()
            .into_inner()
            .term;
        let mut calls = bpb::call_service_client::CallServiceClient::new(self.channel.clone());
        let call = calls
            .lease_calls(authed(
                &secret,
                bpb::LeaseCallsRequest {
                    campaign_id: campaign,
                    max: 1,
                    owner: dialler_id,
                    fencing_term: term,
                    lease_ttl_seconds: 60,
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .calls
            .remove(0);
        calls
            .transition_call(authed(
                &secret,
                bpb::TransitionCallRequest {
                    call_id: call.id.clone(),
                    to_state: bpb::CallState::Dialing as i32,
                    fencing_term: term,
                    lease_token: call.lease.map(|l| l.token).unwrap_or_default(),
                    reason: "dialing".into(),
                    provider_call_id: "CA-outbound-1".into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap();
        call.id
    }

    pub async fn inbound_call(&self) -> String {
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

    pub async fn call(&self, id: &str) -> bpb::Call {
        bpb::call_service_client::CallServiceClient::new(self.channel.clone())
            .get_call(authed(&self.admin, bpb::GetCallRequest { id: id.into() }))
            .await
            .unwrap()
            .into_inner()
    }

    pub fn stream_url(&self) -> String {
        format!("ws://{}/media/twilio", self.gate.addr)
    }

    /// Opens a signed Twilio media stream; Err(status) when the gateway refuses it.
    pub async fn connect(&self, signature_token: &str) -> Result<Ws, (u16, Option<String>)> {
        connect_to(&self.stream_url(), signature_token).await
    }
}

/// Opens a Twilio media stream to `url`, signed as Twilio signs it with `signature_token`;
/// Err(status, Retry-After) when the gateway refuses it.
pub async fn connect_to(url: &str, signature_token: &str) -> Result<Ws, (u16, Option<String>)> {
    let mut req = url.into_client_request().unwrap();
    let sig = voxgate::media::twilio::signature(signature_token, url, &[]);
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

/// A carrier's answer webhook at `gate_url` for outbound call `call_id`, signed, from a
/// person: the TwiML it answers.
pub async fn answer_outbound(gate_url: &str, call_id: &str) -> String {
    let url = format!("{gate_url}/twilio/outbound/answer?call_id={call_id}");
    let params: Vec<(String, String)> =
        [("CallSid", "CA-outbound-1"), ("CallStatus", "in-progress"), ("AnsweredBy", "human")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into();
    let r = reqwest::Client::new()
        .post(&url)
        .header("x-twilio-signature", voxgate::media::twilio::signature(TOKEN, &url, &params))
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

pub type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket over any stream (plain TCP or TLS).
pub type WsOver<S> = tokio_tungstenite::WebSocketStream<S>;

pub async fn send<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WsOver<S>, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

pub async fn start<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WsOver<S>, call_id: &str) {
    start_with(ws, json!({"call_id": call_id})).await;
}

/// `connected` and `start` with these custom parameters (TwiML's `<Parameter>`s).
pub async fn start_with<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WsOver<S>, custom: Value) {
    send(ws, json!({"event": "connected", "protocol": "Call", "version": "1.0.0"})).await;
    send(
        ws,
        json!({"event": "start", "sequenceNumber": "1", "streamSid": "MZ1", "start": {
        "streamSid": "MZ1", "accountSid": "AC1", "callSid": "CA1", "tracks": ["inbound"],
        "customParameters": custom,
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}),
    )
    .await;
}

pub fn frame(i: usize) -> Vec<u8> {
    vox_audio::mulaw::encode(&[(i as i16 % 50 - 25) * 600; 160])
}

pub async fn media<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WsOver<S>, i: usize) {
    use base64::Engine;
    let payload = base64::engine::general_purpose::STANDARD.encode(frame(i));
    send(ws, json!({"event": "media", "sequenceNumber": (i + 2).to_string(), "streamSid": "MZ1",
        "media": {"track": "inbound", "chunk": (i + 1).to_string(), "timestamp": (i * 20).to_string(), "payload": payload}}))
    .await;
}

/// The next text frame as JSON, or the close frame's (code, reason).
pub async fn recv<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WsOver<S>) -> Result<Value, (u16, String)> {
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

/// Reads past the frames still on their way to the close frame: its (code, reason).
pub async fn until_closed<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WsOver<S>) -> (u16, String) {
    loop {
        if let Err(closed) = recv(ws).await {
            return closed;
        }
    }
}

/// The pids of this cluster's worker processes with `index` (found in /proc).
pub fn worker_pids(c: &Cluster, index: u32) -> Vec<u32> {
    let marker = c.dir.path().display().to_string();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let args: Vec<String> = cmd.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).to_string()).collect();
        let is_worker = args.iter().any(|a| a == "worker") && args.iter().any(|a| a.contains(&marker));
        let idx =
            args.iter().position(|a| a == "--index").and_then(|i| args.get(i + 1)).and_then(|v| v.parse::<u32>().ok());
        if is_worker && idx == Some(index) {
            out.push(pid);
        }
    }
    out
}

pub async fn stop<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WsOver<S>) {
    send(ws, json!({"event": "stop", "streamSid": "MZ1", "stop": {"accountSid": "AC1", "callSid": "CA1"}})).await;
}

/// Sends 20 ms of 16 kHz PCM (a ramp of `step`) on a web media socket and returns what
/// sent and the first binary frame that came back.
pub async fn pcm_round_trip(ws: &mut Ws, step: i16) -> (Vec<u8>, Vec<u8>) {
    use futures::{SinkExt, StreamExt};
    let pcm: Vec<u8> = (0..320i16).flat_map(|i| (i * step).to_le_bytes()).collect();
    ws.send(Message::Binary(pcm.clone().into())).await.unwrap();
    loop {
        if let Message::Binary(b) = ws.next().await.unwrap().unwrap() {
            return (pcm, b.to_vec());
        }
    }
}
