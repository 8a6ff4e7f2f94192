//! A whole outbound platform for dialler tests, every part a real process: voxbridge,
//! a fleet host of voxcore workers, voxgate, voxsim (the carrier) and one or more
//! voxdiallers.
#![allow(dead_code, clippy::unwrap_used, reason = "shared by several test binaries; tests stop on failure")]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use tonic::transport::Channel;
use vox_proto::backend::v1 as bpb;
use vox_proto::common::v1 as common;
use vox_testkit::{ServerProcess, control};

pub const TOKEN: &str = "twilio-test-auth-token-for-dialler";
pub const SIM_SID: &str = "ACvoxsim00000000000000000000000000";

pub struct Platform {
    pub bridge: ServerProcess,
    bridge_args: Vec<String>,
    pub host: ServerProcess,
    pub gate: ServerProcess,
    pub sim: ServerProcess,
    pub diallers: Vec<Dialler>,
    pub channel: Channel,
    pub admin: String,
    pub region: String,
    /// Last: dropped after the processes, which print their logs from it on failure.
    pub dir: tempfile::TempDir,
}

pub struct Dialler {
    pub node_id: String,
    secret: String,
    pub process: ServerProcess,
    extra: Vec<String>,
}

pub use vox_testkit::control::authed;

/// Polls `f` every 200 ms until it yields, for at most `within`.
pub async fn until<T>(what: &str, within: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What the platform is built with.
pub struct Settings {
    pub workers: u32,
    pub diallers: usize,
    /// voxsim's carrier model and time scale, instead of the platform's (60x time,
    /// 45% answers, 5% machines, 15% failed).
    pub sim_model: Option<Vec<String>>,
    /// voxsim flags beyond the defaults.
    pub sim_args: Vec<String>,
    /// voxdialler flags beyond the defaults.
    pub dialler_args: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { workers: 8, diallers: 1, sim_model: None, sim_args: Vec::new(), dialler_args: Vec::new() }
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

pub async fn platform(s: Settings) -> Platform {
    let dir = tempfile::tempdir().unwrap();
    // A fixed port, so the platform can find voxbridge again after a restart.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // Short stale deadlines: a call a fault left behind is reaped within seconds.
    let mut bridge_args = strings(&[
        "--heartbeat-interval-ms",
        "500",
        "--reaper-interval-seconds",
        "1",
        "--stale-dialing-seconds",
        "20",
        "--stale-ringing-seconds",
        "20",
        "--stale-answered-seconds",
        "15",
        "--stale-attaching-seconds",
        "15",
        "--listen",
    ]);
    bridge_args.push(format!("127.0.0.1:{port}"));
    bridge_args.push("--data-dir".into());
    bridge_args.push(dir.path().join("bridge").display().to_string());
    let bridge = control::start_bridge("voxbridge", &bridge_args, dir.path()).await;
    let (channel, admin) = control::admin_session(&bridge.url()).await;
    let region = control::create_region(&channel, &admin, "us-east-1", None).await;
    let register = async |kind: bpb::NodeKind| control::register_node(&channel, &admin, &region, kind).await;

    let fleet = register(bpb::NodeKind::Fleet).await;
    let host_args: Vec<String> = vec![
        "host".into(),
        "--workers".into(),
        s.workers.to_string(),
        "--socket-dir".into(),
        dir.path().join("sock").display().to_string(),
        "--spool-dir".into(),
        dir.path().join("spool").display().to_string(),
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

    let gateway = register(bpb::NodeKind::Gateway).await;
    let mut gate_args = strings(&["--listen", "127.0.0.1:0", "--log-format", "json", "--bridge-url"]);
    gate_args.push(bridge.url());
    let gate = ServerProcess::start(
        "voxgate",
        &vox_testkit::workspace_binary("voxgate", "voxgate"),
        &gate_args,
        &[("VOX_NODE_SECRET", gateway.api_secret.clone()), ("TWILIO_AUTH_TOKEN", TOKEN.to_string())],
        dir.path(),
    )
    .await
    .unwrap();

    let mut sim_args = strings(&["--listen", "127.0.0.1:0", "--seed", "7"]);
    match &s.sim_model {
        Some(model) => sim_args.extend(model.iter().cloned()),
        None => sim_args.extend(strings(&[
            "--time-scale",
            "60",
            "--answer-prob",
            "0.45",
            "--machine-prob",
            "0.05",
            "--fail-prob",
            "0.15",
        ])),
    }
    sim_args.extend(s.sim_args.iter().cloned());
    let sim = ServerProcess::start(
        "voxsim",
        &vox_testkit::workspace_binary("voxsim", "voxsim"),
        &sim_args,
        &[("VOXSIM_AUTH_TOKEN", TOKEN.to_string())],
        dir.path(),
    )
    .await
    .unwrap();

    let mut dialler_nodes = Vec::new();
    for _ in 0..s.diallers {
        let node = register(bpb::NodeKind::Dialler).await;
        dialler_nodes.push((node.node.unwrap().id, node.api_secret));
    }
    let mut p = Platform { dir, bridge, bridge_args, host, gate, sim, diallers: Vec::new(), channel, admin, region };
    p.until_slots(s.workers).await;
    for (i, (node_id, secret)) in dialler_nodes.iter().enumerate() {
        let d = p.start_dialler(&format!("voxdialler{i}"), node_id, secret, &s.dialler_args).await;
        p.diallers.push(d);
    }
    p
}

impl Platform {
    async fn start_dialler(&self, name: &str, node_id: &str, secret: &str, extra: &[String]) -> Dialler {
        let mut args = strings(&[
            "--health-listen",
            "127.0.0.1:0",
            "--loop-interval-seconds",
            "0.5",
            "--leadership-ttl-seconds",
            "4",
            "--call-lease-seconds",
            "6",
            "--pacing-report-seconds",
            "2",
            "--provider",
            "sim",
            "--log-format",
            "json",
        ]);
        args.extend(["--bridge-url".into(), self.bridge.url()]);
        args.extend(["--provider-url".into(), self.sim.url()]);
        args.extend(["--gateway-url".into(), self.gate.url()]);
        args.extend(extra.iter().cloned());
        let process = ServerProcess::start_listening(
            name,
            &vox_testkit::workspace_binary("voxdialler", "voxdialler"),
            &args,
            &[("VOX_NODE_SECRET", secret.to_string()), ("TWILIO_AUTH_TOKEN", TOKEN.to_string())],
            self.dir.path(),
        )
        .await
        .unwrap();
        Dialler { node_id: node_id.into(), secret: secret.into(), process, extra: extra.to_vec() }
    }

    /// Starts dialler `i` again (after it was killed), with the same node.
    pub async fn restart_dialler(&mut self, i: usize) {
        let (node_id, secret, extra) =
            (self.diallers[i].node_id.clone(), self.diallers[i].secret.clone(), self.diallers[i].extra.clone());
        let d = self.start_dialler(&format!("voxdialler{i}-again"), &node_id, &secret, &extra).await;
        self.diallers[i] = d;
    }

    async fn until_slots(&self, workers: u32) {
        until("the gateway sees every worker", Duration::from_secs(30), async || {
            let v: Value = reqwest::get(format!("{}/health/fleet", self.gate.url())).await.ok()?.json().await.ok()?;
            (v["fleet_available"] == workers).then_some(())
        })
        .await;
    }

    /// Stops voxbridge (SIGTERM) and starts it again on the same address and data.
    pub async fn restart_bridge(&mut self, down_for: Duration) {
        let status = self.bridge.terminate(Duration::from_secs(10)).unwrap();
        assert!(status.success(), "voxbridge stops cleanly: {status}");
        tokio::time::sleep(down_for).await;
        self.bridge = control::start_bridge("voxbridge-again", &self.bridge_args, self.dir.path()).await;
        self.channel = Channel::from_shared(self.bridge.url()).unwrap().connect().await.unwrap();
    }

    pub fn calls(&self) -> bpb::call_service_client::CallServiceClient<Channel> {
        bpb::call_service_client::CallServiceClient::new(self.channel.clone())
    }

    pub fn campaigns(&self) -> bpb::campaign_service_client::CampaignServiceClient<Channel> {
        bpb::campaign_service_client::CampaignServiceClient::new(self.channel.clone())
    }

    /// A running campaign dialling `numbers` numbers (+1555 0100 0000 upwards), echo agent,
    /// retrying no-answer and busy once after a second.
    pub async fn campaign(&self, numbers: u32, max_concurrency: u32, cps: u32) -> String {
        let spec = bpb::CampaignSpec {
            name: format!("test campaign {numbers}"),
            region_id: self.region.clone(),
            caller_id: "+15550000000".into(),
            agent: Some(common::AgentSettings { kind: common::AgentKind::Echo as i32, ..Default::default() }),
            weight: 1,
            max_concurrency,
            window: Some(bpb::CallingWindow {
                time_zone: "UTC".into(),
                start: "00:00".into(),
                end: "24:00".into(),
                days: vec![],
            }),
            retry: Some(bpb::RetryPolicy {
                max_attempts: 2,
                backoff_seconds: 1,
                backoff_multiplier: 1.0,
                retry_on: vec![bpb::CallState::NoAnswer as i32, bpb::CallState::Busy as i32],
            }),
            pacing: Some(bpb::Pacing {
                mode: bpb::PacingMode::Predictive as i32,
                fixed_ratio: 0.0,
                abandon_target: 0.03,
                max_calls_per_second: cps,
            }),
            compliance: None,
        };
        let id = self
            .campaigns()
            .create_campaign(authed(&self.admin, bpb::CreateCampaignRequest { spec: Some(spec) }))
            .await
            .unwrap()
            .into_inner()
            .id;
        let rows: Vec<String> = (0..numbers).map(|i| format!("+1555{:07}", 1_000_000 + i)).collect();
        let added = self
            .campaigns()
            .add_numbers(authed(&self.admin, bpb::AddNumbersRequest { campaign_id: id.clone(), numbers: rows }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(added.accepted, numbers, "{:?}", added.rejected);
        self.campaigns()
            .start_campaign(authed(&self.admin, bpb::CampaignActionRequest { id: id.clone() }))
            .await
            .unwrap();
        id
    }

    pub async fn campaign_counts(&self, id: &str) -> bpb::CampaignCounts {
        self.campaigns()
            .get_campaign(authed(&self.admin, bpb::GetCampaignRequest { id: id.into() }))
            .await
            .unwrap()
            .into_inner()
            .counts
            .unwrap()
    }

    /// Every call of the campaign, every attempt.
    pub async fn all_calls(&self, campaign_id: &str) -> Vec<bpb::Call> {
        let mut out = Vec::new();
        let mut page_token = String::new();
        loop {
            let r = self
                .calls()
                .list_calls(authed(
                    &self.admin,
                    bpb::ListCallsRequest {
                        campaign_id: campaign_id.into(),
                        limit: 1000,
                        page_token: page_token.clone(),
                        ..Default::default()
                    },
                ))
                .await
                .unwrap()
                .into_inner();
            out.extend(r.calls);
            if r.next_page_token.is_empty() {
                return out;
            }
            page_token = r.next_page_token;
        }
    }

    pub async fn events(&self, call_id: &str) -> Vec<bpb::CallEvent> {
        self.calls()
            .list_call_events(authed(&self.admin, bpb::ListCallEventsRequest { call_id: call_id.into() }))
            .await
            .unwrap()
            .into_inner()
            .events
    }

    /// Waits until nothing of the campaign is pending or live.
    pub async fn until_done(&self, id: &str, within: Duration) {
        until("every number to reach an end", within, async || {
            let c = self.campaign_counts(id).await;
            (c.pending == 0 && c.live == 0).then_some(())
        })
        .await;
    }

    /// The carrier's record of every call (voxsim's `/sim/calls`).
    pub async fn carrier_calls(&self) -> Vec<Value> {
        let v: Value = reqwest::Client::new()
            .get(format!("{}/sim/calls", self.sim.url()))
            .basic_auth(SIM_SID, Some(TOKEN))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        match v {
            Value::Array(a) => a,
            Value::Object(mut o) => match o.remove("calls") {
                Some(Value::Array(a)) => a,
                other => panic!("voxsim /sim/calls: unexpected shape {other:?}"),
            },
            other => panic!("voxsim /sim/calls: unexpected shape {other:?}"),
        }
    }

    pub async fn sim_fault(&self, fault: Value) {
        let r = reqwest::Client::new()
            .post(format!("{}/sim/faults", self.sim.url()))
            .basic_auth(SIM_SID, Some(TOKEN))
            .json(&fault)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "voxsim faults: {}", r.status());
    }

    /// A dialler's `/health`: (status code, body).
    pub async fn dialler_health(&self, i: usize) -> (u16, Value) {
        let r = reqwest::get(format!("{}/health", self.diallers[i].process.url())).await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    /// A dialler's `/metrics` as sample name (with labels) → value.
    pub async fn dialler_metrics(&self, i: usize) -> HashMap<String, f64> {
        let text =
            reqwest::get(format!("{}/metrics", self.diallers[i].process.url())).await.unwrap().text().await.unwrap();
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect()
    }

    /// Which dialler leads now, by voxbridge.
    pub async fn leader(&self) -> (String, u64) {
        let mut client = bpb::leadership_service_client::LeadershipServiceClient::new(self.channel.clone());
        let l = client.get_leadership(authed(&self.admin, bpb::GetLeadershipRequest {})).await.unwrap().into_inner();
        (l.holder_id, l.term)
    }
}

/// The carrier never had one number in two calls at once, and never placed one Vox call
/// twice.
pub fn assert_no_double_dials(carrier: &[Value]) {
    let mut by_number: HashMap<String, Vec<(String, String)>> = HashMap::new();
    let mut by_call: HashMap<String, u32> = HashMap::new();
    for c in carrier {
        let to = c["to"].as_str().unwrap_or_default().to_string();
        let created = c["created_at"].as_str().unwrap_or_default().to_string();
        let ended = c["ended_at"].as_str().unwrap_or("9999").to_string();
        by_number.entry(to).or_default().push((created, ended));
        if let Some(id) = c["call_id"].as_str().filter(|s| !s.is_empty()) {
            *by_call.entry(id.to_string()).or_default() += 1;
        }
    }
    for (id, n) in by_call {
        assert_eq!(n, 1, "Vox call {id} was placed {n} times");
    }
    for (number, mut spans) in by_number {
        spans.sort();
        for w in spans.windows(2) {
            assert!(w[0].1 <= w[1].0, "{number} was in two live calls at once: {:?} and {:?}", w[0], w[1]);
        }
    }
}

/// Sends `signal` (e.g. "STOP", "CONT", "KILL") to `pid`.
pub fn signal(pid: u32, signal: &str) {
    let ok = std::process::Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status().unwrap();
    assert!(ok.success(), "kill -{signal} {pid}");
}

/// Seconds since the epoch of a protobuf timestamp.
pub fn secs(t: &Option<prost_types::Timestamp>) -> f64 {
    t.as_ref().map_or(0.0, |t| t.seconds as f64 + f64::from(t.nanos) / 1e9)
}

pub fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}
