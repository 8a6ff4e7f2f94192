//! Vox across machines, on one machine: every process on its own loopback address, as it
//! would be on its own host. Two voxbridge instances on one MongoDB and one Redis (same
//! master key and JWT secret); two fleet hosts (`voxcore host --listen-ip 127.0.0.2` and
//! `127.0.0.3`, the same worker base port and the same folder layout under their own
//! folders, 3 workers each, workers reached over TCP); two gateways on 127.0.0.4 and
//! 127.0.0.5, each on its own voxbridge; and a real HAProxy in front of the gateways,
//! running `ops/haproxy/haproxy.cfg` as shipped (round robin, not sticky).
//!
//! Through HAProxy: 40 Twilio calls (the signed voice webhook, then the Media Stream the
//! TwiML names, with its `<Parameter>`s) all succeed, spread over both hosts (neither
//! more than 60%), some with the webhook on one gateway and the stream on the other, and
//! no worker ever holds two calls (every worker's Status sampled throughout). Then one
//! fleet host dies with its workers (kill -9) while calls are live on it: those calls end
//! `failed` (`worker_lost`) and new calls go to the other host. Then one gateway dies:
//! once HAProxy's health check takes it out, new calls keep succeeding.
//!
//! Needs MongoDB and Redis (`VOX_TEST_MONGO_URL`, `VOX_TEST_REDIS_URL`: `bash ops/test.sh`
//! starts them) and haproxy (`bash ops/install-test-deps.sh`); fails, never skips, without.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test stops at the first failure")]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use vox_proto::backend::v1 as bpb;
use vox_proto::fleet::v1 as fpb;
use vox_testkit::ServerProcess;
use vox_testkit::control::{self, authed};

/// The Twilio account's auth token every gateway checks signatures with.
const TOKEN: &str = "twilio auth token of the multi-host test";
const WORKERS: u32 = 3;
const CALLS: usize = 40;
/// Calls in flight at once in the first phase.
const AT_ONCE: usize = 6;
/// Echo frames each call sends (each answered before the next).
const FRAMES: usize = 5;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("set {name} or run `bash ops/test.sh`, which starts MongoDB and Redis servers (this test never skips)")
    })
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the repository").to_path_buf()
}

fn haproxy() -> PathBuf {
    // Debian installs it in /usr/sbin, which is not on every user's PATH.
    let sbin = Path::new("/usr/sbin/haproxy");
    if sbin.is_file() {
        return sbin.to_path_buf();
    }
    vox_testkit::require_program("haproxy", "run `bash ops/install-test-deps.sh` (apt-get install haproxy)")
}

fn free_port(ip: Ipv4Addr) -> u16 {
    TcpListener::bind((ip, 0)).unwrap().local_addr().unwrap().port()
}

/// A base port whose `WORKERS` ports are free on every one of `ips` (both hosts use the
/// same ports, as identical machines would), below the kernel's ephemeral range.
fn free_base_port(ips: &[Ipv4Addr]) -> u16 {
    for attempt in 0..200u32 {
        let seed = std::process::id().wrapping_mul(7919).wrapping_add(attempt * 104_729);
        let base = 20_000 + u16::try_from(seed % 10_000).unwrap();
        let free = ips.iter().all(|ip| (0..WORKERS).all(|i| TcpListener::bind((*ip, base + i as u16)).is_ok()));
        if free {
            return base;
        }
    }
    panic!("no {WORKERS} free ports in a row on {ips:?}");
}

async fn until<T>(what: &str, within: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------
// Twilio's side: signed webhooks and Media Streams, as Twilio sends them.

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

/// The next text frame as JSON, or the close frame's (code, reason).
async fn recv(ws: &mut Ws) -> Result<Value, (u16, String)> {
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), ws.next()).await;
        match next.expect("the gateway said something within 10 s") {
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

/// Calls between their webhook and their end, for failure messages: a call refused a
/// worker while fewer calls than workers were in flight is the edge's fault, not load.
static IN_FLIGHT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn in_flight() -> String {
    let n = IN_FLIGHT.load(std::sync::atomic::Ordering::SeqCst);
    format!("{n} calls in flight (this one included) on {} workers", 2 * WORKERS)
}

/// A live call as Twilio holds it: its Vox call id and its media stream.
struct Call {
    id: String,
    ws: Ws,
    sent: usize,
}

impl Drop for Call {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Call {
    /// Rings through `edge` (HAProxy): the voice webhook, then the stream its TwiML
    /// names, with the TwiML's parameters in `start`.
    async fn ring(http: &reqwest::Client, edge: &str, n: usize) -> Call {
        IN_FLIGHT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let url = format!("{edge}/twilio/voice");
        let params: Vec<(&str, String)> = vec![
            ("AccountSid", "AC00000000000000000000000000000000".into()),
            ("CallSid", format!("CA{:032x}", n)),
            ("CallStatus", "ringing".into()),
            ("Direction", "inbound".into()),
            ("From", format!("+1415555{:04}", n)),
            ("To", "+14155550100".into()),
        ];
        let r = http
            .post(&url)
            .header("x-twilio-signature", vox_testkit::twilio::signature(TOKEN, &url, &params))
            .form(&params)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let twiml = r.text().await.unwrap();
        assert_eq!(status, 200, "call {n}: the voice webhook through HAProxy answered {twiml}");
        let (stream_url, parameters) = vox_testkit::twilio::twiml_stream(&twiml);
        let id = parameters["call_id"].as_str().unwrap().to_string();
        let mut req = stream_url.as_str().into_client_request().unwrap();
        req.headers_mut()
            .insert("x-twilio-signature", vox_testkit::twilio::signature(TOKEN, &stream_url, &[]).parse().unwrap());
        let ws = match tokio_tungstenite::connect_async(req).await {
            Ok((ws, _)) => ws,
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                let body = String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).to_string();
                panic!(
                    "call {n} ({id}): the media stream {stream_url} was refused ({}): {} {body}",
                    in_flight(),
                    resp.status()
                )
            }
            Err(e) => panic!("call {n} ({id}): the media stream {stream_url} failed: {e}"),
        };
        let mut call = Call { id, ws, sent: 0 };
        send(&mut call.ws, json!({"event": "connected", "protocol": "Call", "version": "1.0.0"})).await;
        let sid = format!("MZ{n}");
        send(
            &mut call.ws,
            json!({"event": "start", "sequenceNumber": "1", "streamSid": sid, "start": {
                "streamSid": sid, "accountSid": "AC00000000000000000000000000000000", "callSid": format!("CA{:032x}", n),
                "tracks": ["inbound"], "customParameters": parameters,
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}),
        )
        .await;
        call
    }

    /// Sends `frames` frames of audio, each echoed back by the agent.
    async fn talk(&mut self, frames: usize) {
        for _ in 0..frames {
            let i = self.sent;
            self.sent += 1;
            let payload = base64::engine::general_purpose::STANDARD.encode([0x55 + (i % 16) as u8; 160]);
            send(&mut self.ws, json!({"event": "media", "sequenceNumber": (i + 2).to_string(), "streamSid": "MZ",
                "media": {"track": "inbound", "chunk": (i + 1).to_string(), "timestamp": (i * 20).to_string(), "payload": payload}}))
            .await;
            match recv(&mut self.ws).await {
                Ok(v) if v["event"] == "media" => {}
                other => panic!("call {}: expected the echo of frame {i}, got {other:?} ({})", self.id, in_flight()),
            }
        }
    }

    /// The caller hangs up: `stop`, then the gateway's close frame.
    async fn hang_up(mut self) -> String {
        send(
            &mut self.ws,
            json!({"event": "stop", "streamSid": "MZ", "stop": {"accountSid": "AC0", "callSid": "CA0"}}),
        )
        .await;
        loop {
            match recv(&mut self.ws).await {
                Ok(_) => continue,
                Err((1000, _)) => return self.id.clone(),
                Err(closed) => panic!("call {}: the stream closed with {closed:?} after stop", self.id),
            }
        }
    }

    /// A whole short call: ring, talk, hang up.
    async fn whole(http: &reqwest::Client, edge: &str, n: usize) -> String {
        let mut call = Call::ring(http, edge, n).await;
        call.talk(FRAMES).await;
        call.hang_up().await
    }
}

/// Runs calls `numbers` through `edge`, `at_once` at a time; their ids.
async fn calls(http: &reqwest::Client, edge: &str, numbers: std::ops::Range<usize>, at_once: usize) -> Vec<String> {
    futures::stream::iter(numbers).map(|n| Call::whole(http, edge, n)).buffer_unordered(at_once).collect().await
}

// ---------------------------------------------------------------------------------------
// The cluster.

struct Host {
    process: ServerProcess,
    node_id: String,
    secret: String,
    ip: Ipv4Addr,
}

struct Gate {
    process: ServerProcess,
    node_id: String,
}

/// The processes come first: fields drop in order, and their logs (printed when the test
/// fails) live in `dir`, which goes last.
struct Cluster {
    _bridges: Vec<ServerProcess>,
    channel: Channel,
    admin: String,
    hosts: Vec<Host>,
    gates: Vec<Gate>,
    haproxy: ServerProcess,
    /// HAProxy's plain HTTP frontend.
    edge: String,
    /// HAProxy's TLS frontend, and the CA its certificate chains to.
    tls_edge: SocketAddr,
    ca_pem: PathBuf,
    base_port: u16,
    dir: tempfile::TempDir,
}

async fn start_bridge(dir: &Path, name: &str, shared: &[String]) -> ServerProcess {
    let mut args: Vec<String> = ["--listen", "127.0.0.1:0", "--log-format", "json"].map(String::from).to_vec();
    // Heartbeats every 500 ms and a host silent for 2 s is offline: a dead host leaves the
    // gateways' slot tables within seconds.
    args.extend(["--heartbeat-interval-ms", "500", "--node-staleness-seconds", "2"].map(String::from));
    args.extend(["--data-dir".to_string(), dir.join(name).display().to_string()]);
    args.extend(["--recordings-dir".to_string(), dir.join("recordings").display().to_string()]);
    args.extend(shared.iter().cloned());
    control::start_bridge(name, &args, dir).await
}

async fn start_cluster() -> Cluster {
    let (mongo, redis) = (env("VOX_TEST_MONGO_URL"), env("VOX_TEST_REDIS_URL"));
    let haproxy = haproxy();
    let dir = tempfile::tempdir().unwrap();
    let shared: Vec<String> = [
        "--store",
        &mongo,
        "--store-database",
        &format!("vox_multi_host_{}", vox_domain::ids::random_token(8)),
        "--redis",
        &redis,
        "--jwt-secret",
        "the multi-host test's jwt secret, shared by both instances",
        "--master-key",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    ]
    .map(String::from)
    .to_vec();
    let bridges =
        vec![start_bridge(dir.path(), "bridge-a", &shared).await, start_bridge(dir.path(), "bridge-b", &shared).await];
    let (channel, admin) = control::admin_session(&bridges[0].url()).await;
    let region = control::create_region(&channel, &admin, "us-east-1", None).await;

    // Two fleet hosts, host k on 127.0.0.<k+1> with its voxbridge k, the same ports and
    // the same folder layout (each under its own folder).
    let ips = [Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 3)];
    let base_port = free_base_port(&ips);
    let mut hosts = Vec::new();
    for (k, ip) in ips.iter().enumerate() {
        let node = control::register_node(&channel, &admin, &region, bpb::NodeKind::Fleet).await;
        let folder = dir.path().join(format!("host-{}", k + 1));
        let args: Vec<String> = vec![
            "host".into(),
            "--workers".into(),
            WORKERS.to_string(),
            "--socket-dir".into(),
            folder.join("run").display().to_string(),
            "--spool-dir".into(),
            folder.join("spool").display().to_string(),
            "--recordings-dir".into(),
            dir.path().join("recordings").display().to_string(),
            "--bridge-url".into(),
            bridges[k].url(),
            "--listen-ip".into(),
            ip.to_string(),
            "--worker-base-port".into(),
            base_port.to_string(),
            "--log-format".into(),
            "json".into(),
        ];
        let process = ServerProcess::spawn(
            &format!("fleet-host-{}", k + 1),
            &vox_testkit::workspace_binary("voxcore", "voxcore"),
            &args,
            &[("VOX_NODE_SECRET", node.api_secret.clone())],
            dir.path(),
        )
        .unwrap();
        hosts.push(Host { process, node_id: node.node.unwrap().id, secret: node.api_secret, ip: *ip });
    }

    // Two gateways, gateway j on 127.0.0.<j+3> with its voxbridge j.
    let mut gates = Vec::new();
    for (j, bridge) in bridges.iter().enumerate() {
        let node = control::register_node(&channel, &admin, &region, bpb::NodeKind::Gateway).await;
        let args: Vec<String> = vec![
            "--listen".into(),
            format!("127.0.0.{}:0", j + 4),
            "--bridge-url".into(),
            bridge.url(),
            "--log-format".into(),
            "json".into(),
        ];
        let process = ServerProcess::start(
            &format!("voxgate-{}", j + 1),
            &vox_testkit::workspace_binary("voxgate", "voxgate"),
            &args,
            &[("VOX_NODE_SECRET", node.api_secret), ("TWILIO_AUTH_TOKEN", TOKEN.to_string())],
            dir.path(),
        )
        .await
        .unwrap();
        gates.push(Gate { process, node_id: node.node.unwrap().id });
    }
    let http = reqwest::Client::new();
    for gate in &gates {
        let url = gate.process.url();
        until(
            &format!("{url} sees all {} worker slots with a worker token", 2 * WORKERS),
            Duration::from_secs(30),
            async || {
                let fleet: Value = http.get(format!("{url}/health/fleet")).send().await.ok()?.json().await.ok()?;
                let health: Value = http.get(format!("{url}/health")).send().await.ok()?.json().await.ok()?;
                (fleet["fleet_available"] == 2 * WORKERS && health["worker_token"] != false).then_some(())
            },
        )
        .await;
    }

    // HAProxy running the shipped configuration, with a certificate of the test CA.
    let ca = vox_testkit::tls::TestCa::new(&dir.path().join("tls"), "edge").unwrap();
    let cert = ca.server_cert("haproxy", &["127.0.0.1", "localhost"]).unwrap();
    let pem = dir.path().join("tls").join("haproxy-combined.pem");
    std::fs::write(&pem, [std::fs::read(&cert.cert).unwrap(), std::fs::read(&cert.key).unwrap()].concat()).unwrap();
    let (http_port, https_port) = (free_port(Ipv4Addr::LOCALHOST), free_port(Ipv4Addr::LOCALHOST));
    let config = repo_root().join("ops/haproxy/haproxy.cfg");
    let haproxy_env: Vec<(&str, String)> = vec![
        ("VOX_GATEWAY1", gates[0].process.addr.to_string()),
        ("VOX_GATEWAY2", gates[1].process.addr.to_string()),
        ("VOX_TLS_PEM", pem.display().to_string()),
        ("VOX_HTTP_BIND", format!("127.0.0.1:{http_port}")),
        ("VOX_HTTPS_BIND", format!("127.0.0.1:{https_port}")),
        ("VOX_PLAIN_HTTP", "1".into()),
        ("VOX_HAPROXY_KEEP_USER", "1".into()),
    ];
    let check = Command::new(&haproxy)
        .arg("-c")
        .arg("-f")
        .arg(&config)
        .envs(haproxy_env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "haproxy -c rejects {}: {}",
        config.display(),
        String::from_utf8_lossy(&check.stderr)
    );
    let haproxy_args: Vec<String> = vec!["-db".into(), "-f".into(), config.display().to_string()];
    let haproxy_process = ServerProcess::spawn("haproxy", &haproxy, &haproxy_args, &haproxy_env, dir.path()).unwrap();
    let edge = format!("http://127.0.0.1:{http_port}");
    until("HAProxy in front of both gateways", Duration::from_secs(15), async || {
        let r = http.get(format!("{edge}/health")).send().await.ok()?;
        r.status().is_success().then_some(())
    })
    .await;

    Cluster {
        _bridges: bridges,
        channel,
        admin,
        hosts,
        gates,
        haproxy: haproxy_process,
        edge,
        tls_edge: SocketAddr::from((Ipv4Addr::LOCALHOST, https_port)),
        ca_pem: ca.ca_pem.clone(),
        base_port,
        dir,
    }
}

impl Cluster {
    fn calls(&self) -> bpb::call_service_client::CallServiceClient<Channel> {
        bpb::call_service_client::CallServiceClient::new(self.channel.clone())
    }

    async fn call(&self, id: &str) -> bpb::Call {
        self.calls().get_call(authed(&self.admin, bpb::GetCallRequest { id: id.into() })).await.unwrap().into_inner()
    }

    async fn events(&self, id: &str) -> Vec<bpb::CallEvent> {
        let req = bpb::ListCallEventsRequest { call_id: id.into() };
        self.calls().list_call_events(authed(&self.admin, req)).await.unwrap().into_inner().events
    }

    /// Waits until every call in `ids` has ended; their records.
    async fn ended(&self, ids: &[String]) -> Vec<bpb::Call> {
        let terminal = [bpb::CallState::Completed, bpb::CallState::Failed, bpb::CallState::Abandoned];
        until("every call ended", Duration::from_secs(30), async || {
            let mut out = Vec::new();
            for id in ids {
                let c = self.call(id).await;
                if !terminal.contains(&c.state()) {
                    return None;
                }
                out.push(c);
            }
            Some(out)
        })
        .await
    }

    fn host_of(&self, node_id: &str) -> usize {
        self.hosts.iter().position(|h| h.node_id == node_id).unwrap_or_else(|| panic!("no host is node {node_id:?}"))
    }

    /// Which gateway (0 or 1) made an event of this call, by the event's actor.
    fn gate_of(&self, event: &bpb::CallEvent) -> Option<usize> {
        self.gates.iter().position(|g| event.actor == format!("node:{}", g.node_id))
    }

    /// Every worker's TCP address and its host's node secret (the credential the host
    /// itself uses with its workers).
    fn workers(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for h in &self.hosts {
            for i in 0..WORKERS {
                out.push((format!("http://{}:{}", h.ip, self.base_port + i as u16), h.secret.clone()));
            }
        }
        out
    }
}

/// What sampling every worker's `Status` saw.
#[derive(Debug, Default)]
struct Samples {
    rounds: usize,
    /// The most calls one worker reported at once, and where.
    most_calls: u32,
    most_at: String,
    /// The calls each worker reported, in the order it reported them.
    seen: BTreeMap<String, Vec<String>>,
}

/// Samples each worker's `Status` every 50 ms until `stop`.
fn sample_workers(
    workers: Vec<(String, String)>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<Samples> {
    tokio::spawn(async move {
        let mut clients = Vec::new();
        for (url, secret) in workers {
            let channel = Channel::from_shared(url.clone()).unwrap().connect_lazy();
            let bearer: tonic::metadata::MetadataValue<_> = format!("Bearer {secret}").parse().unwrap();
            let auth = move |mut req: tonic::Request<()>| {
                req.metadata_mut().insert("authorization", bearer.clone());
                Ok(req)
            };
            clients.push((
                url,
                fpb::worker_service_client::WorkerServiceClient::new(InterceptedService::new(channel, auth)),
            ));
        }
        let mut samples = Samples::default();
        while !*stop.borrow() {
            samples.rounds += 1;
            for (url, client) in &mut clients {
                let Ok(Ok(s)) =
                    tokio::time::timeout(Duration::from_millis(300), client.status(fpb::StatusRequest {})).await
                else {
                    continue; // a dead host's workers do not answer
                };
                let s = s.into_inner();
                if s.worker_calls > samples.most_calls {
                    samples.most_calls = s.worker_calls;
                    samples.most_at = url.clone();
                }
                if !s.call_id.is_empty() {
                    let seen = samples.seen.entry(url.clone()).or_default();
                    if seen.last() != Some(&s.call_id) {
                        seen.push(s.call_id);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        samples
    })
}

/// The pids of `pid`'s children (a fleet host's workers).
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // pid (comm) state ppid …; comm may hold spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(") ") else { continue };
        if rest.split(' ').nth(1).and_then(|p| p.parse::<u32>().ok()) == Some(pid) {
            out.push(child);
        }
    }
    out
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit_once(") ").is_none_or(|(_, rest)| !rest.starts_with('Z')))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multi_host_calls_through_haproxy_spread_over_hosts_and_survive_a_dead_host_and_gateway() {
    let started = Instant::now();
    let mut c = start_cluster().await;
    let http = reqwest::Client::new();
    eprintln!("multi_host: cluster up in {:?} (worker base port {})", started.elapsed(), c.base_port);

    // HAProxy's TLS frontend serves the test CA's certificate; a client that does not
    // trust that CA fails the handshake.
    let https = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&c.ca_pem).unwrap()).unwrap())
        .build()
        .unwrap();
    let tls_health = format!("https://127.0.0.1:{}/health", c.tls_edge.port());
    assert_eq!(https.get(&tls_health).send().await.unwrap().status(), 200, "HTTPS through HAProxy");
    let untrusting = reqwest::Client::builder().tls_built_in_root_certs(false).build().unwrap();
    assert!(untrusting.get(&tls_health).send().await.is_err(), "a client without the CA is refused");

    // 1. 40 calls through HAProxy, 6 at a time, while every worker's Status is sampled.
    let (stop_sampling, stop) = tokio::sync::watch::channel(false);
    let sampler = sample_workers(c.workers(), stop);
    let t = Instant::now();
    let ids = calls(&http, &c.edge, 0..CALLS, AT_ONCE).await;
    let records = c.ended(&ids).await;
    eprintln!("multi_host: {CALLS} calls, {AT_ONCE} at a time, in {:?}", t.elapsed());
    let _ = stop_sampling.send(true);
    let samples = sampler.await.unwrap();

    let mut per_host = [0usize; 2];
    let mut per_worker: BTreeMap<(usize, u32), Vec<&str>> = BTreeMap::new();
    for r in &records {
        assert_eq!((r.state(), r.end_reason.as_str()), (bpb::CallState::Completed, "caller_hangup"), "{r:?}");
        let host = c.host_of(&r.node_id);
        per_host[host] += 1;
        per_worker.entry((host, r.worker_index)).or_default().push(&r.id);
    }
    eprintln!(
        "multi_host: calls per host {per_host:?}; per worker {:?}",
        per_worker.values().map(Vec::len).collect::<Vec<_>>()
    );
    for (h, n) in per_host.iter().enumerate() {
        assert!(*n * 100 <= CALLS * 60, "host {} took {n} of {CALLS} calls (more than 60%): {per_host:?}", h + 1);
    }
    assert!(per_host.iter().all(|n| *n > 0));
    // No worker ever held two calls: no worker reported more than one at once, and no
    // call a worker reported came back after the worker had moved on to another.
    assert!(samples.rounds > 10, "the sampler ran ({} rounds)", samples.rounds);
    assert!(samples.most_calls <= 1, "{} reported {} calls at once", samples.most_at, samples.most_calls);
    for (worker, seen) in &samples.seen {
        let distinct: BTreeSet<&String> = seen.iter().collect();
        assert_eq!(distinct.len(), seen.len(), "{worker} went back to an earlier call: {seen:?}");
    }
    let by_url: HashMap<String, (usize, u32)> = c
        .workers()
        .into_iter()
        .enumerate()
        .map(|(n, (url, _))| (url, (n / WORKERS as usize, n as u32 % WORKERS + 1)))
        .collect();
    for (url, seen) in &samples.seen {
        for id in seen.iter().filter(|id| ids.contains(id)) {
            let on = per_worker.get(&by_url[url]).is_some_and(|calls| calls.contains(&id.as_str()));
            assert!(on, "{url} reported call {id}, whose record names another worker");
        }
    }
    // Not sticky: each call's webhook and stream went wherever HAProxy sent them. Both
    // gateways served steps of calls, and some calls had their webhook answered by one
    // and their stream carried by the other.
    let mut webhooks = [0usize; 2];
    let mut streams = [0usize; 2];
    let mut crossed = 0;
    for id in &ids {
        let events = c.events(id).await;
        let created = events.first().and_then(|e| c.gate_of(e));
        let attached = events.iter().find(|e| e.to_state() == bpb::CallState::Attaching).and_then(|e| c.gate_of(e));
        let (Some(created), Some(attached)) = (created, attached) else {
            panic!("call {id}: a gateway node should have created and attached it: {events:?}");
        };
        webhooks[created] += 1;
        streams[attached] += 1;
        crossed += usize::from(created != attached);
    }
    eprintln!(
        "multi_host: webhooks per gateway {webhooks:?}, streams per gateway {streams:?}; on different gateways: {crossed}"
    );
    assert!((0..2).all(|g| webhooks[g] + streams[g] > 0), "both gateways served calls: {webhooks:?} {streams:?}");
    assert!(crossed > 0, "some call's webhook and stream went to different gateways");

    // 2. A fleet host dies, workers and all, while calls are live on it.
    let mut live = Vec::new();
    for n in 100..104 {
        let mut call = Call::ring(&http, &c.edge, n).await;
        call.talk(2).await;
        live.push(call);
    }
    let mut on_host = [Vec::new(), Vec::new()];
    for call in live {
        let node = until("the live call's worker in its record", Duration::from_secs(5), async || {
            let r = c.call(&call.id).await;
            (r.state() == bpb::CallState::InProgress && !r.node_id.is_empty()).then_some(r.node_id)
        })
        .await;
        on_host[c.host_of(&node)].push(call);
    }
    let victim = if on_host[0].is_empty() { 1 } else { 0 };
    let survivor = 1 - victim;
    assert!(!on_host[victim].is_empty(), "live calls on the host that dies");
    let host_pid = c.hosts[victim].process.pid().unwrap();
    let workers = children_of(host_pid);
    assert_eq!(workers.len(), WORKERS as usize, "host {} runs its workers as children", victim + 1);
    let mut kill = Command::new("kill");
    kill.arg("-KILL").arg(host_pid.to_string()).args(workers.iter().map(u32::to_string));
    assert!(kill.status().unwrap().success());
    let t = Instant::now();
    for mut call in std::mem::take(&mut on_host[victim]) {
        let closed = loop {
            match recv(&mut call.ws).await {
                Ok(_) => continue,
                Err(closed) => break closed,
            }
        };
        assert_eq!(closed.0, 1011, "call {}: the gateway closes the stream as an error: {closed:?}", call.id);
        let r = c.ended(std::slice::from_ref(&call.id)).await.remove(0);
        assert_eq!((r.state(), r.end_reason.as_str()), (bpb::CallState::Failed, "worker_lost"), "{r:?}");
        let last = c.events(&call.id).await.pop().unwrap();
        assert_eq!((last.to_state(), last.reason.as_str()), (bpb::CallState::Failed, "worker_lost"), "{last:?}");
    }
    eprintln!("multi_host: the dead host's calls failed (worker_lost) within {:?}", t.elapsed());
    for pid in workers.iter().chain([&host_pid]) {
        until(&format!("pid {pid} gone"), Duration::from_secs(5), async || (!alive(*pid)).then_some(())).await;
    }
    // The survivor's calls go on, and end normally.
    let mut finished = Vec::new();
    for mut call in std::mem::take(&mut on_host[survivor]) {
        call.talk(2).await;
        finished.push(call.hang_up().await);
    }
    for r in c.ended(&finished).await {
        assert_eq!(r.state(), bpb::CallState::Completed, "{r:?}");
    }
    // voxbridge sees the host silent (2 s here), and every gateway drops its slots.
    let dead_node = c.hosts[victim].node_id.clone();
    for gate in &c.gates {
        let url = gate.process.url();
        until("the gateways to drop the dead host's slots", Duration::from_secs(10), async || {
            let fleet: Value = http.get(format!("{url}/health/fleet")).send().await.ok()?.json().await.ok()?;
            let workers = fleet["workers"].as_array()?;
            workers.iter().all(|w| w["node_id"] != dead_node.as_str()).then_some(())
        })
        .await;
    }
    eprintln!("multi_host: the gateways dropped the dead host's slots {:?} after the kill", t.elapsed());
    // New calls go to the surviving host (its 3 workers; 2 at a time leaves one spare).
    let after_host = calls(&http, &c.edge, 200..206, 2).await;
    for r in c.ended(&after_host).await {
        assert_eq!(r.state(), bpb::CallState::Completed, "{r:?}");
        assert_eq!(c.host_of(&r.node_id), survivor, "a new call went to the live host: {r:?}");
    }

    // 3. A gateway dies: HAProxy's health check takes it out (two failed checks a second
    // apart; until then a refused connection is retried on the other), and every new call
    // goes through the live one.
    let mut dead = c.gates.remove(0);
    dead.process.kill();
    let t = Instant::now();
    let log = c.haproxy.stdout_path.clone();
    until("HAProxy to mark gateway 1 down", Duration::from_secs(10), async || {
        std::fs::read_to_string(&log).ok()?.contains("voxgate/gate1 is DOWN").then_some(())
    })
    .await;
    eprintln!("multi_host: HAProxy took the dead gateway out after {:?}", t.elapsed());
    let after_gate = calls(&http, &c.edge, 300..306, 2).await;
    for id in &after_gate {
        let attached = c.events(id).await.into_iter().find(|e| e.to_state() == bpb::CallState::Attaching).unwrap();
        assert_eq!(attached.actor, format!("node:{}", c.gates[0].node_id), "the live gateway carried the stream");
    }
    for r in c.ended(&after_gate).await {
        assert_eq!(r.state(), bpb::CallState::Completed, "{r:?}");
    }
    eprintln!("multi_host: calls flow through the live gateway {:?} after the kill", t.elapsed());
    eprintln!("multi_host: done in {:?} ({})", started.elapsed(), c.dir.path().display());
}
