//! `voxctl up` with the real binaries: the cluster comes up on ports picked by the OS,
//! serves the fleet and the REST API with the generated admin password, stops cleanly on
//! SIGTERM leaving no process behind, comes back on the same data dir without duplicating
//! anything, and fails loudly when one of its processes dies. Spread over loopback
//! addresses (`--fleet-hosts 2 --gateways 2`), it comes up healthy and takes Twilio calls
//! through both gateways on workers of both hosts.
#![allow(clippy::unwrap_used, reason = "tests stop on failure")]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tonic::Request;
use tonic::transport::Channel;
use vox_proto::backend::v1 as pb;
use vox_testkit::workspace_binary;

const READY_TIMEOUT: Duration = Duration::from_secs(90);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// The folder holding voxbridge, voxcore and voxgate (built here if missing).
fn bin_dir() -> PathBuf {
    let bridge = workspace_binary("voxbridge", "voxbridge");
    let core = workspace_binary("voxcore", "voxcore");
    let gate = workspace_binary("voxgate", "voxgate");
    let dir = bridge.parent().unwrap().to_path_buf();
    assert_eq!(core.parent().unwrap(), dir);
    assert_eq!(gate.parent().unwrap(), dir);
    dir
}

/// A running `voxctl up` and what it printed.
struct Up {
    child: Option<Child>,
    data: PathBuf,
    stderr_path: PathBuf,
    lines: mpsc::Receiver<String>,
    stdout: Vec<String>,
    children: Vec<(String, u32)>,
    bridge: String,
    gateway: String,
    /// Every gateway, when there are several (`gateways=` of `VOX_READY`).
    gateways: Vec<String>,
}

impl Up {
    fn command(data: &Path, bins: &Path, extra: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_voxctl"));
        cmd.args(["up", "--data-dir"])
            .arg(data)
            .args(["--workers", "2", "--bridge-listen", "127.0.0.1:0", "--gateway-listen", "127.0.0.1:0", "--bin-dir"])
            .arg(bins)
            .args(extra)
            .env_remove("VOX_DATA_DIR")
            .env_remove("VOX_WORKERS")
            .env_remove("VOX_FLEET_HOSTS")
            .env_remove("VOX_GATEWAYS")
            .env_remove("VOX_WORKER_BASE_PORT")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null());
        cmd
    }

    /// Starts `voxctl up` and reads its stdout until `VOX_READY`.
    fn start(data: &Path, bins: &Path, run: &str) -> Up {
        Self::start_with(data, bins, run, &[])
    }

    /// [`Up::start`] with more flags.
    fn start_with(data: &Path, bins: &Path, run: &str, extra: &[&str]) -> Up {
        let stderr_path = data.parent().unwrap().join(format!("voxctl-{run}.err"));
        let mut child = Self::command(data, bins, extra)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut up = Up {
            child: Some(child),
            data: data.to_path_buf(),
            stderr_path,
            lines,
            stdout: Vec::new(),
            children: Vec::new(),
            bridge: String::new(),
            gateway: String::new(),
            gateways: Vec::new(),
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match up.lines.recv_timeout(left) {
                Ok(line) => {
                    up.stdout.push(line.clone());
                    if let Some(rest) = line.strip_prefix("VOX_CHILD ") {
                        let (name, pid) = rest.split_once(' ').unwrap();
                        up.children.push((name.to_string(), pid.parse().unwrap()));
                    }
                    if let Some(rest) = line.strip_prefix("VOX_READY ") {
                        for field in rest.split(' ') {
                            match field.split_once('=') {
                                Some(("bridge", url)) => up.bridge = url.to_string(),
                                Some(("gateway", url)) => up.gateway = url.to_string(),
                                Some(("gateways", urls)) => up.gateways = urls.split(',').map(String::from).collect(),
                                _ => {}
                            }
                        }
                        return up;
                    }
                }
                Err(e) => panic!("voxctl up was not ready within {READY_TIMEOUT:?} ({e}):\n{}", up.report()),
            }
        }
    }

    /// Everything voxctl and its processes printed, for failure messages.
    fn report(&mut self) -> String {
        while let Ok(line) = self.lines.try_recv() {
            self.stdout.push(line);
        }
        let mut out = format!("--- voxctl stdout ---\n{}\n", self.stdout.join("\n"));
        out += &format!("--- voxctl stderr ---\n{}\n", std::fs::read_to_string(&self.stderr_path).unwrap_or_default());
        let mut logs: Vec<PathBuf> = std::fs::read_dir(self.data.join("logs"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        logs.sort();
        for path in logs {
            out += &format!("--- {} ---\n{}\n", path.display(), std::fs::read_to_string(&path).unwrap_or_default());
        }
        out
    }

    fn pid(&self, name: &str) -> u32 {
        self.children.iter().find(|(n, _)| n == name).unwrap().1
    }

    fn signal(&self, signal: &str, pid: u32) {
        assert!(Command::new("kill").arg(signal).arg(pid.to_string()).status().unwrap().success());
    }

    /// Waits for voxctl to exit by itself.
    fn wait(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return status;
            }
            if Instant::now() > deadline {
                panic!("voxctl still running {within:?} later:\n{}", self.report());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap()
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.report());
        }
        // Stop it the way a user would, so its children are stopped too.
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let deadline = Instant::now() + STOP_TIMEOUT;
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn alive(pid: u32) -> bool {
    // A zombie has exited: only its parent has not collected it yet.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(") ").is_none_or(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Pids of live processes whose command line mentions `needle` (the run's data dir:
/// voxbridge, the voxcore host and its workers all get paths under it).
fn processes_mentioning(needle: &Path) -> Vec<(u32, String)> {
    let needle = needle.display().to_string();
    let me = std::process::id();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        if pid == me {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&needle) && alive(pid) {
            found.push((pid, cmdline));
        }
    }
    found
}

async fn fleet_available(gateway: &str) -> u64 {
    let body: serde_json::Value = reqwest::get(format!("{gateway}/health/fleet"))
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    body["fleet_available"].as_u64().unwrap_or_else(|| panic!("no fleet_available in {body}"))
}

fn admin_password(data: &Path) -> String {
    let text = std::fs::read_to_string(data.join("credentials.toml")).unwrap();
    let value: toml::Table = toml::from_str(&text).unwrap();
    assert_eq!(value["admin_email"].as_str(), Some("admin@vox.local"));
    value["admin_password"].as_str().unwrap().to_string()
}

/// Signs in through the gateway's REST API, as the console would.
async fn rest_login(gateway: &str, password: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{gateway}/api/v1/auth/login"))
        .json(&serde_json::json!({"email": "admin@vox.local", "password": password}))
        .send()
        .await
        .unwrap()
}

async fn assert_rest_login_works(gateway: &str, password: &str) {
    let r = rest_login(gateway, password).await;
    assert_eq!(r.status(), 200, "the generated admin password signs in");
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["access_token"].as_str().is_some_and(|t| !t.is_empty()), "{body}");
}

async fn node_names(bridge: &str, password: &str) -> Vec<String> {
    let channel = Channel::from_shared(bridge.to_string()).unwrap().connect().await.unwrap();
    let mut auth = pb::auth_service_client::AuthServiceClient::new(channel.clone());
    let login = pb::LoginRequest { email: "admin@vox.local".into(), password: password.into() };
    let token = auth.login(login).await.unwrap().into_inner().access_token;
    let mut req = Request::new(pb::ListNodesRequest::default());
    req.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    let mut nodes = pb::node_service_client::NodeServiceClient::new(channel);
    let mut names: Vec<String> =
        nodes.list_nodes(req).await.unwrap().into_inner().nodes.into_iter().map(|n| n.name).collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn up_serves_the_cluster_stops_cleanly_and_comes_back_on_the_same_data() {
    let bins = bin_dir();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");

    // First run: everything comes up on ports the OS picked.
    let mut up = Up::start(&data, &bins, "first");
    let names: Vec<&str> = up.children.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["voxbridge", "voxcore", "voxgate"], "{:?}", up.stdout);
    assert_eq!(fleet_available(&up.gateway).await, 2, "both worker slots are free behind the gateway");
    let banner = up.stdout.join("\n");
    assert!(banner.contains(&format!("{}/api/v1/openapi.json", up.gateway)), "{banner}");
    assert!(banner.contains(&data.join("credentials.toml").display().to_string()), "{banner}");

    let credentials = data.join("credentials.toml");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&credentials).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "credentials.toml is private");
    }
    let password = admin_password(&data);
    assert!(!banner.contains(&password), "the password is not printed");
    assert_rest_login_works(&up.gateway, &password).await;
    assert_eq!(rest_login(&up.gateway, "not the password at all").await.status(), 401);
    for name in ["voxbridge", "voxcore", "voxgate"] {
        let log = data.join("logs").join(format!("{name}.log"));
        assert!(std::fs::metadata(&log).unwrap().len() > 0, "{} has the output of {name}", log.display());
    }

    // SIGTERM stops every process of the run, and voxctl exits 0.
    let pids = up.children.clone();
    up.signal("-TERM", up.child.as_ref().unwrap().id());
    let status = up.wait(STOP_TIMEOUT);
    assert!(status.success(), "voxctl exits 0 after SIGTERM: {status}\n{}", up.report());
    for (name, pid) in &pids {
        assert!(!alive(*pid), "{name} (pid {pid}) still runs after voxctl stopped");
    }
    assert_eq!(processes_mentioning(&data), vec![], "no worker or other process of this run remains");
    drop(up);

    // Second run on the same data: same admin password, no duplicate nodes.
    let mut up = Up::start(&data, &bins, "second");
    assert_eq!(admin_password(&data), password, "credentials are read back, not regenerated");
    assert_rest_login_works(&up.gateway, &password).await;
    assert_eq!(node_names(&up.bridge, &password).await, ["local-console", "local-fleet", "local-gateway"]);
    assert_eq!(fleet_available(&up.gateway).await, 2);

    // A process that dies on its own takes the cluster down, named with its log.
    let gate = up.pid("voxgate");
    up.signal("-KILL", gate);
    let status = up.wait(STOP_TIMEOUT);
    assert!(!status.success(), "voxctl fails when a child dies");
    let stderr = up.stderr();
    assert!(stderr.contains("voxgate exited") && stderr.contains("voxgate.log"), "{stderr}");
    for (name, pid) in &up.children {
        assert!(!alive(*pid), "{name} (pid {pid}) still runs after voxctl stopped");
    }
    assert_eq!(processes_mentioning(&data), vec![]);
}

fn twilio_token(data: &Path) -> String {
    let text = std::fs::read_to_string(data.join("credentials.toml")).unwrap();
    let value: toml::Table = toml::from_str(&text).unwrap();
    value["twilio_auth_token"].as_str().unwrap().to_string()
}

/// A whole Twilio inbound call through `gateway`, as Twilio places it: the signed voice
/// webhook, the media stream its TwiML names (with its parameters), three frames the echo
/// agent sends back, and the caller's hangup. The Vox call id.
async fn twilio_call(gateway: &str, token: &str, n: usize) -> String {
    let url = format!("{gateway}/twilio/voice");
    let sid = format!("CA{n:032x}");
    let params: Vec<(&str, String)> = vec![
        ("AccountSid", "AC00000000000000000000000000000000".into()),
        ("CallSid", sid.clone()),
        ("CallStatus", "ringing".into()),
        ("From", format!("+1415555{n:04}")),
        ("To", "+14155550100".into()),
    ];
    let r = reqwest::Client::new()
        .post(&url)
        .header("x-twilio-signature", vox_testkit::twilio::signature(token, &url, &params))
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the voice webhook at {url}");
    let (stream_url, parameters) = vox_testkit::twilio::twiml_stream(&r.text().await.unwrap());
    let call_id = parameters["call_id"].as_str().unwrap().to_string();
    let mut req = stream_url.as_str().into_client_request().unwrap();
    req.headers_mut()
        .insert("x-twilio-signature", vox_testkit::twilio::signature(token, &stream_url, &[]).parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap_or_else(|e| panic!("{stream_url}: {e}"));
    let start = json!({"event": "start", "sequenceNumber": "1", "streamSid": "MZ1", "start": {
        "streamSid": "MZ1", "accountSid": "AC00000000000000000000000000000000", "callSid": sid, "tracks": ["inbound"],
        "customParameters": parameters, "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}});
    ws.send(Message::text(json!({"event": "connected", "protocol": "Call", "version": "1.0.0"}).to_string()))
        .await
        .unwrap();
    ws.send(Message::text(start.to_string())).await.unwrap();
    for i in 0..3usize {
        let payload = base64::engine::general_purpose::STANDARD.encode([0x55u8; 160]);
        let media = json!({"event": "media", "sequenceNumber": (i + 2).to_string(), "streamSid": "MZ1",
            "media": {"track": "inbound", "chunk": (i + 1).to_string(), "timestamp": (i * 20).to_string(), "payload": payload}});
        ws.send(Message::text(media.to_string())).await.unwrap();
        let echo = loop {
            let next = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("an answer within 10 s");
            match next {
                Some(Ok(Message::Text(t))) => break serde_json::from_str::<Value>(t.as_str()).unwrap(),
                Some(Ok(Message::Close(c))) => panic!("call {call_id} closed: {c:?}"),
                Some(Ok(_)) => continue,
                other => panic!("call {call_id}: {other:?}"),
            }
        };
        assert_eq!(echo["event"], "media", "call {call_id}: the echo of frame {i}");
    }
    ws.send(Message::text(json!({"event": "stop", "streamSid": "MZ1"}).to_string())).await.unwrap();
    while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
        if m.is_close() {
            break;
        }
    }
    call_id
}

/// An admin session on voxbridge.
async fn admin(bridge: &str, password: &str) -> (Channel, String) {
    let channel = Channel::from_shared(bridge.to_string()).unwrap().connect().await.unwrap();
    let login = pb::LoginRequest { email: "admin@vox.local".into(), password: password.into() };
    let token = pb::auth_service_client::AuthServiceClient::new(channel.clone()).login(login).await.unwrap();
    (channel, token.into_inner().access_token)
}

fn authed<T>(token: &str, msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

#[tokio::test(flavor = "multi_thread")]
async fn up_spreads_hosts_and_gateways_over_loopback_addresses_and_takes_calls_on_both_hosts() {
    let bins = bin_dir();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // Worker ports of the workers' choosing: other tests may hold 7101 on 127.0.0.2.
    let spread = ["--fleet-hosts", "2", "--gateways", "2", "--worker-base-port", "0"];
    let mut up = Up::start_with(&data, &bins, "spread", &spread);
    let names: Vec<&str> = up.children.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["voxbridge", "voxcore-1", "voxcore-2", "voxgate-1", "voxgate-2"], "{:?}", up.stdout);
    assert_eq!(up.gateways.len(), 2, "VOX_READY lists both gateways: {:?}", up.stdout);
    assert_eq!(up.gateways[0], up.gateway, "gateway 1 is the one of --gateway-listen");
    assert!(up.gateways[1].starts_with("http://127.0.0.4:"), "gateway 2 on its own address: {:?}", up.gateways);

    // Every gateway sees all four slots; each host's workers are on its own address.
    let banner = up.stdout.join("\n");
    for gateway in &up.gateways {
        assert_eq!(fleet_available(gateway).await, 4, "{gateway} sees both hosts' workers");
        assert!(banner.contains(gateway.as_str()), "{gateway} is printed:\n{banner}");
        let fleet: Value = reqwest::get(format!("{gateway}/health/fleet")).await.unwrap().json().await.unwrap();
        let urls: Vec<&str> = fleet["workers"].as_array().unwrap().iter().map(|w| w["url"].as_str().unwrap()).collect();
        assert_eq!(urls.iter().filter(|u| u.starts_with("http://127.0.0.2:")).count(), 2, "{urls:?}");
        assert_eq!(urls.iter().filter(|u| u.starts_with("http://127.0.0.3:")).count(), 2, "{urls:?}");
        for url in urls {
            assert!(banner.contains(url), "worker {url} is printed:\n{banner}");
        }
    }
    let password = admin_password(&data);
    assert_eq!(
        node_names(&up.bridge, &password).await,
        ["local-console", "local-fleet-1", "local-fleet-2", "local-gateway-1", "local-gateway-2"]
    );

    // Twilio calls through each gateway in turn land on workers of both hosts.
    let token = twilio_token(&data);
    let mut ids = Vec::new();
    for n in 0..6 {
        ids.push(twilio_call(&up.gateways[n % 2], &token, n).await);
    }
    let (channel, admin_token) = admin(&up.bridge, &password).await;
    let mut nodes = pb::node_service_client::NodeServiceClient::new(channel.clone());
    let list = nodes.list_nodes(authed(&admin_token, pb::ListNodesRequest::default())).await.unwrap().into_inner();
    let name_of: std::collections::HashMap<String, String> = list.nodes.into_iter().map(|n| (n.id, n.name)).collect();
    let mut calls = pb::call_service_client::CallServiceClient::new(channel);
    let mut hosts = std::collections::BTreeMap::<String, usize>::new();
    for id in &ids {
        let deadline = Instant::now() + Duration::from_secs(15);
        let call = loop {
            let c = calls.get_call(authed(&admin_token, pb::GetCallRequest { id: id.clone() })).await.unwrap();
            let c = c.into_inner();
            if c.state() == pb::CallState::Completed {
                break c;
            }
            assert!(Instant::now() < deadline, "call {id} did not complete: {c:?}\n{}", up.report());
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        *hosts.entry(name_of[&call.node_id].clone()).or_default() += 1;
    }
    assert_eq!(hosts.keys().collect::<Vec<_>>(), ["local-fleet-1", "local-fleet-2"], "calls on both hosts: {hosts:?}");

    // SIGTERM stops every process, the workers of both hosts included.
    up.signal("-TERM", up.child.as_ref().unwrap().id());
    let status = up.wait(STOP_TIMEOUT);
    assert!(status.success(), "voxctl exits 0 after SIGTERM: {status}\n{}", up.report());
    assert_eq!(processes_mentioning(&data), vec![], "no worker or other process of this run remains");
    drop(up);

    // Back to one machine's layout on the same data: the spread nodes are gone.
    let mut up = Up::start(&data, &bins, "one-machine");
    assert_eq!(node_names(&up.bridge, &password).await, ["local-console", "local-fleet", "local-gateway"]);
    assert_eq!(fleet_available(&up.gateway).await, 2);
    assert!(up.gateways.is_empty(), "one gateway: VOX_READY as before");
    up.signal("-TERM", up.child.as_ref().unwrap().id());
    assert!(up.wait(STOP_TIMEOUT).success());
}

#[test]
fn a_taken_port_is_named_with_the_flag_to_change_it() {
    let bins = bin_dir();
    let tmp = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_voxctl"))
        .args(["up", "--data-dir"])
        .arg(tmp.path().join("data"))
        .args(["--bridge-listen", "127.0.0.1:0", "--gateway-listen", &addr.to_string(), "--bin-dir"])
        .arg(&bins)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&addr.to_string()) && stderr.contains("--gateway-listen"), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("VOX_CHILD"), "nothing was started");
}

#[test]
fn missing_binaries_are_named_with_how_to_get_them() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_voxctl"))
        .args(["up", "--data-dir"])
        .arg(tmp.path().join("data"))
        .arg("--bin-dir")
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("voxbridge, voxcore, voxgate") && stderr.contains("cargo build"), "{stderr}");
}

/// `voxctl health` with the development credentials of `data`, as JSON.
fn health(bridge: &str, data: &Path) -> (bool, serde_json::Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_voxctl"))
        .args(["health", "--json", "--bridge-url", bridge, "--data-dir"])
        .arg(data)
        .env_remove("VOX_ADMIN_EMAIL")
        .env_remove("VOX_ADMIN_PASSWORD")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let report = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    (out.status.success(), report, String::from_utf8_lossy(&out.stderr).to_string())
}

#[tokio::test]
async fn health_passes_on_a_healthy_cluster_and_names_a_fleet_host_that_stopped() {
    let bins = bin_dir();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let up = Up::start(&data, &bins, "health");

    let (ok, report, stderr) = health(&up.bridge, &data);
    assert!(ok, "{report}\n{stderr}");
    let parts: Vec<&str> = report["checks"].as_array().unwrap().iter().map(|c| c["part"].as_str().unwrap()).collect();
    for (i, prefix) in ["voxbridge", "fleet host local-fleet", "gateway local-gateway", "dialler", "storage of region"]
        .iter()
        .enumerate()
    {
        assert!(parts.get(i).is_some_and(|p| p.starts_with(prefix)), "check {i} should be {prefix}: {parts:?}");
    }

    // A frozen host stops heartbeating as a dead one does (and voxctl up, which stops the
    // whole cluster when a child exits, keeps the rest running to be checked).
    let host = up.pid("voxcore");
    up.signal("-STOP", host);
    let deadline = Instant::now() + Duration::from_secs(30);
    let (ok, report, stderr) = loop {
        let r = health(&up.bridge, &data);
        if !r.0 || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    up.signal("-CONT", host);
    assert!(!ok, "voxctl health passed with the fleet host stopped: {report}");
    let first = report["first_failure"].as_str().unwrap();
    assert!(first.starts_with("fleet host local-fleet") && first.contains("offline"), "{first}");
    assert!(stderr.contains("fleet host local-fleet"), "the error names the host: {stderr}");
}
