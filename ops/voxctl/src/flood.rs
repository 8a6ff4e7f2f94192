//! `voxctl bench flood`: does a node stay online while voxbridge is flooded?
//!
//! It starts a voxbridge of its own (embedded store, a temporary data dir), registers a
//! fleet node and heartbeats as it every `--heartbeat-every-ms`, first alone (the
//! baseline), then while it floods voxbridge from this machine with
//!
//! - `--slow-connections` connections that never finish a request: four in five are
//!   HTTP/2 gRPC `Login` calls whose body never comes (each holds a request open), the
//!   rest HTTP/1.1 requests whose headers trickle in a line a second; a connection the
//!   server closes is opened again, so the count holds for the whole flood;
//! - `--bad-logins` clients signing in with a wrong password over and over, each from
//!   its own loopback address (127.0.1.x), so the per-address budget does not stop them
//!   all at once and the password hashing budget is what holds.
//!
//! It prints the heartbeat latency (p50, p99, max) of both phases, every failed
//! heartbeat, what voxbridge answered the bad sign-ins, and whether voxbridge saw the
//! node online at every check. It exits non-zero when a heartbeat failed or the node was
//! seen offline: that is the property the flood must not break.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;
use tonic::transport::Channel;
use vox_proto::backend::v1 as pb;

use crate::children::{Children, Launch};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The voxbridge executable to flood. [default: the one next to voxctl]
    #[arg(long)]
    pub bridge_bin: Option<PathBuf>,
    /// Connections that never finish a request, held open during the flood.
    #[arg(long, default_value_t = 500)]
    pub slow_connections: usize,
    /// Concurrent sign-ins with a wrong password during the flood.
    #[arg(long, default_value_t = 200)]
    pub bad_logins: usize,
    /// Heartbeats alone first, seconds.
    #[arg(long, default_value_t = 10)]
    pub baseline_seconds: u64,
    /// Heartbeats under the flood, seconds.
    #[arg(long, default_value_t = 20)]
    pub flood_seconds: u64,
    /// How often the node heartbeats (real nodes: every 2 s; more often here for figures).
    #[arg(long, default_value_t = 100)]
    pub heartbeat_every_ms: u64,
    /// Print the report as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Heartbeat figures of one phase.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub heartbeats: usize,
    pub failed: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Checks of the node's `online` flag (as an admin sees it): online, offline, and
    /// checks voxbridge did not answer (those are users' requests, which may be shed).
    pub seen_online: usize,
    pub seen_offline: usize,
    pub checks_unanswered: usize,
}

/// What the flood did and what the node saw.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub baseline: Phase,
    pub flood: Phase,
    /// Answers to the bad sign-ins, by gRPC code and the gist of the message.
    pub bad_login_answers: BTreeMap<String, u64>,
    /// Slow connections opened in all (more than asked when the server closed some).
    pub slow_connections_opened: u64,
    /// Slow connections the server closed or answered (deadlines, caps).
    pub slow_connections_cut: u64,
    /// Heartbeat failures, first ten.
    pub failures: Vec<String>,
}

impl Report {
    /// The property: every heartbeat answered and the node never seen offline.
    pub fn node_kept_up(&self) -> bool {
        self.baseline.failed + self.flood.failed == 0 && self.baseline.seen_offline + self.flood.seen_offline == 0
    }
}

const ADMIN_EMAIL: &str = "admin@vox.local";

pub async fn run(args: &Args, out: &mut (impl std::io::Write + Send)) -> anyhow::Result<()> {
    let report = measure(args).await?;
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
    } else {
        print_report(args, &report, out)?;
    }
    if !report.node_kept_up() {
        bail!("the node did not stay up under the flood: {:?}", report.failures);
    }
    Ok(())
}

fn print_report(args: &Args, r: &Report, out: &mut impl std::io::Write) -> anyhow::Result<()> {
    writeln!(
        out,
        "voxbridge flood: {} slow connections + {} concurrent bad sign-ins; a node heartbeating every {} ms",
        args.slow_connections, args.bad_logins, args.heartbeat_every_ms
    )?;
    writeln!(
        out,
        "{:<10} {:>10} {:>7} {:>9} {:>9} {:>9} {:>14}",
        "phase", "heartbeats", "failed", "p50 ms", "p99 ms", "max ms", "seen online"
    )?;
    for (name, p) in [("baseline", &r.baseline), ("flood", &r.flood)] {
        writeln!(
            out,
            "{name:<10} {:>10} {:>7} {:>9.2} {:>9.2} {:>9.2} {:>8}/{:<5}",
            p.heartbeats,
            p.failed,
            p.p50_ms,
            p.p99_ms,
            p.max_ms,
            p.seen_online,
            p.seen_online + p.seen_offline
        )?;
    }
    let ratio = if r.baseline.p99_ms > 0.0 { r.flood.p99_ms / r.baseline.p99_ms } else { f64::NAN };
    writeln!(out, "heartbeat p99 under the flood / baseline: {ratio:.1}x")?;
    writeln!(out, "bad sign-ins answered:")?;
    for (answer, n) in &r.bad_login_answers {
        writeln!(out, "  {n:>7}  {answer}")?;
    }
    writeln!(
        out,
        "slow connections: {} opened, {} cut off by voxbridge",
        r.slow_connections_opened, r.slow_connections_cut
    )?;
    writeln!(out, "node kept up: {}", if r.node_kept_up() { "yes" } else { "NO" })?;
    for f in &r.failures {
        writeln!(out, "  failure: {f}")?;
    }
    Ok(())
}

/// Runs both phases against a voxbridge of its own.
pub async fn measure(args: &Args) -> anyhow::Result<Report> {
    let program = match &args.bridge_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe().context("find voxctl")?.with_file_name("voxbridge"),
    };
    if !program.is_file() {
        bail!(
            "cannot find voxbridge at {}; build it (`cargo build -p voxbridge`) or pass --bridge-bin",
            program.display()
        );
    }
    let dir = std::env::temp_dir().join(format!("vox-flood-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let result = measure_in(args, program, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn measure_in(args: &Args, program: PathBuf, dir: &std::path::Path) -> anyhow::Result<Report> {
    let password = format!("flood-{}", vox_domain::ids::random_token(16));
    let address_file = dir.join("bridge.addr");
    let mut children = Children::default();
    children.start(
        Launch {
            name: "voxbridge".into(),
            program,
            args: vec![
                "--data-dir".into(),
                dir.join("data").display().to_string(),
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--address-file".into(),
                address_file.display().to_string(),
            ],
            envs: vec![("VOX_ADMIN_PASSWORD", password.clone()), ("VOX_LOG_FORMAT", "json".into())],
        },
        dir,
    )?;
    let url = crate::ready::address_url(&mut children, "voxbridge", &address_file).await?;
    crate::ready::healthy(&mut children, &reqwest::Client::new(), "voxbridge", &url).await?;
    let outcome = flood(args, &url, &password).await;
    children.stop_all().await;
    outcome
}

async fn flood(args: &Args, url: &str, password: &str) -> anyhow::Result<Report> {
    let admin = Channel::from_shared(url.to_string())?.connect().await.context("connect to voxbridge")?;
    let token = pb::auth_service_client::AuthServiceClient::new(admin.clone())
        .login(pb::LoginRequest { email: ADMIN_EMAIL.into(), password: password.into() })
        .await
        .context("sign in as the admin")?
        .into_inner()
        .access_token;
    let mut regions = pb::region_service_client::RegionServiceClient::new(admin.clone());
    let region = regions
        .create_region(bearer(
            pb::CreateRegionRequest { name: "flood".into(), country: "US".into(), storage: None },
            &token,
        )?)
        .await
        .context("create a region")?
        .into_inner();
    let mut nodes = pb::node_service_client::NodeServiceClient::new(admin.clone());
    let registered = nodes
        .register_node(bearer(
            pb::RegisterNodeRequest {
                kind: pb::NodeKind::Fleet as i32,
                region_id: region.id,
                name: "flood-node".into(),
                endpoint: "http://127.0.0.1:9".into(),
                sip_port: 0,
            },
            &token,
        )?)
        .await
        .context("register a node")?
        .into_inner();
    let node_id = registered.node.context("registration returned no node")?.id;
    let node = Node {
        channel: Channel::from_shared(url.to_string())?.connect_lazy(),
        id: node_id,
        secret: registered.api_secret,
    };
    let every = Duration::from_millis(args.heartbeat_every_ms.max(10));
    let checker = Checker { nodes, token: token.clone() };

    let baseline = phase(&node, &checker, every, Duration::from_secs(args.baseline_seconds)).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let mut tasks = Vec::new();
    let authority = url.trim_start_matches("http://").to_string();
    let h2 = args.slow_connections * 4 / 5;
    for i in 0..args.slow_connections {
        let (stop, counters, authority) = (Arc::clone(&stop), Arc::clone(&counters), authority.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                counters.opened.fetch_add(1, Ordering::Relaxed);
                let cut = if i < h2 { stuck_grpc(&authority, &stop).await } else { trickle(&authority, &stop).await };
                if cut {
                    counters.cut.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }));
    }
    let answers = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
    for i in 0..args.bad_logins {
        let (stop, answers, url) = (Arc::clone(&stop), Arc::clone(&answers), url.to_string());
        tasks.push(tokio::spawn(async move {
            // 127.0.1.1 … 127.0.1.250: every client its own address.
            let octet = u8::try_from(i % 250 + 1).unwrap_or(1);
            let from = IpAddr::V4(Ipv4Addr::new(127, 0, 1, octet));
            let Ok(endpoint) = Channel::from_shared(url) else { return };
            let mut auth =
                pb::auth_service_client::AuthServiceClient::new(endpoint.local_address(Some(from)).connect_lazy());
            while !stop.load(Ordering::Relaxed) {
                let attempt = pb::LoginRequest { email: ADMIN_EMAIL.into(), password: "not the password".into() };
                let code = match tokio::time::timeout(Duration::from_secs(15), auth.login(attempt)).await {
                    Ok(Ok(_)) => "Ok (a wrong password was accepted!)".to_string(),
                    // The code and the first clause of the message: capacity, the address's
                    // budget or the hashing budget.
                    Ok(Err(s)) => format!("{:?}: {}", s.code(), gist(s.message())),
                    Err(_) => "no answer in 15 s".to_string(),
                };
                *answers.lock().await.entry(code).or_default() += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
    }
    // Let the flood build up before measuring.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let flood = phase(&node, &checker, every, Duration::from_secs(args.flood_seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.abort();
    }
    let (flood, mut failures) = flood?;
    let (baseline, baseline_failures) = baseline;
    failures.splice(0..0, baseline_failures);
    failures.truncate(10);
    let bad_login_answers = answers.lock().await.clone();
    Ok(Report {
        baseline,
        flood,
        bad_login_answers,
        slow_connections_opened: counters.opened.load(Ordering::Relaxed),
        slow_connections_cut: counters.cut.load(Ordering::Relaxed),
        failures,
    })
}

/// A message up to its first clause or address.
fn gist(message: &str) -> &str {
    let end = [";", ",", " from "].iter().filter_map(|sep| message.find(sep)).min().unwrap_or(message.len());
    &message[..end]
}

fn bearer<T>(msg: T, token: &str) -> anyhow::Result<tonic::Request<T>> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert("authorization", format!("Bearer {token}").parse().context("a token fit for a header")?);
    Ok(r)
}

#[derive(Debug, Default)]
struct Counters {
    opened: AtomicU64,
    cut: AtomicU64,
}

struct Node {
    channel: Channel,
    id: String,
    secret: String,
}

struct Checker {
    nodes: pb::node_service_client::NodeServiceClient<Channel>,
    token: String,
}

/// Heartbeats for `length`, while checking the node's online flag every second.
async fn phase(
    node: &Node,
    checker: &Checker,
    every: Duration,
    length: Duration,
) -> anyhow::Result<(Phase, Vec<String>)> {
    let (beats, checks) = tokio::join!(heartbeats(node, every, length), checks(node, checker, length));
    let (mut latencies, mut failures) = beats?;
    let (online, offline, unanswered) = checks?;
    let failed = failures.len();
    if offline > 0 {
        failures.push(format!("voxbridge showed the node offline at {offline} checks"));
    }
    latencies.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        if latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        latencies[i.min(latencies.len() - 1)]
    };
    let phase = Phase {
        heartbeats: latencies.len() + failed,
        failed,
        p50_ms: pick(0.50),
        p99_ms: pick(0.99),
        max_ms: pick(1.0),
        seen_online: online,
        seen_offline: offline,
        checks_unanswered: unanswered,
    };
    Ok((phase, failures))
}

/// The node's heartbeats: each one's latency, and the failures.
async fn heartbeats(node: &Node, every: Duration, length: Duration) -> anyhow::Result<(Vec<f64>, Vec<String>)> {
    let boot_id = vox_domain::ids::random_token(12);
    let end = Instant::now() + length;
    let mut latencies = Vec::new();
    let mut failures = Vec::new();
    let mut client = pb::node_service_client::NodeServiceClient::new(node.channel.clone());
    while Instant::now() < end {
        let beat = pb::HeartbeatRequest {
            node_id: node.id.clone(),
            boot_id: boot_id.clone(),
            version: "flood".into(),
            ..Default::default()
        };
        let started = Instant::now();
        // A real node's deadline: voxcore gives up on a heartbeat after 10 s.
        match tokio::time::timeout(Duration::from_secs(10), client.heartbeat(bearer(beat, &node.secret)?)).await {
            Ok(Ok(_)) => latencies.push(started.elapsed().as_secs_f64() * 1000.0),
            Ok(Err(s)) => failures.push(format!("heartbeat: {:?}: {}", s.code(), s.message())),
            Err(_) => failures.push("heartbeat: no answer within 10 s".into()),
        }
        tokio::time::sleep(every.saturating_sub(started.elapsed())).await;
    }
    Ok((latencies, failures))
}

/// The node's `online` flag as the admin sees it, every second: (online, offline,
/// unanswered).
async fn checks(node: &Node, checker: &Checker, length: Duration) -> anyhow::Result<(usize, usize, usize)> {
    // The first heartbeat of the phase lands before the first check.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let end = Instant::now() + length;
    let (mut online, mut offline, mut unanswered) = (0, 0, 0);
    while Instant::now() < end {
        let started = Instant::now();
        let mut nodes = checker.nodes.clone();
        let req = bearer(pb::GetNodeRequest { id: node.id.clone() }, &checker.token)?;
        match tokio::time::timeout(Duration::from_secs(5), nodes.get_node(req)).await {
            Ok(Ok(n)) if n.get_ref().online => online += 1,
            Ok(Ok(_)) => offline += 1,
            _ => unanswered += 1,
        }
        tokio::time::sleep(Duration::from_secs(1).saturating_sub(started.elapsed())).await;
    }
    Ok((online, offline, unanswered))
}

/// An HTTP/2 gRPC call whose body never comes. True when voxbridge ended it (or the
/// connection) rather than the flood.
async fn stuck_grpc(authority: &str, stop: &AtomicBool) -> bool {
    use http_body_util::StreamBody;
    let Ok(tcp) = tokio::net::TcpStream::connect(authority).await else { return true };
    let Ok((mut send, conn)) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), hyper_util::rt::TokioIo::new(tcp))
            .await
    else {
        return true;
    };
    let driver = tokio::spawn(conn);
    let body = StreamBody::new(futures::stream::pending::<Result<hyper::body::Frame<bytes::Bytes>, Infallible>>());
    let Ok(req) = hyper::Request::post(format!("http://{authority}/vox.backend.v1.AuthService/Login"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(body)
    else {
        return true;
    };
    let answered = tokio::select! {
        _ = send.send_request(req) => true,
        _ = until(stop) => false,
    };
    driver.abort();
    answered
}

/// An HTTP/1.1 request whose headers come a line a second. True when voxbridge closed it.
async fn trickle(authority: &str, stop: &AtomicBool) -> bool {
    let Ok(mut tcp) = tokio::net::TcpStream::connect(authority).await else { return true };
    if tcp.write_all(b"GET /health HTTP/1.1\r\n").await.is_err() {
        return true;
    }
    for i in 0u64.. {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        if tcp.write_all(format!("x-slow-{i}: 1\r\n").as_bytes()).await.is_err() {
            return true;
        }
    }
    false
}

async fn until(stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
