//! `voxctl bench control`: the control plane's throughput, through voxbridge's real gRPC
//! API, against voxbridge processes the bench starts itself.
//!
//! Two workloads, each on a voxbridge of its own:
//! - **leases** ([`leases`]): one dialler node holds the leadership lease, and
//!   `--leasers` concurrent leasers (its dialling loops, each on its own connection) call
//!   `LeaseCalls` with its fencing term, `--batch` calls at a time, until a running
//!   campaign of `--calls` numbers is drained. Measured on the embedded store (SQLite,
//!   voxbridge's default) and on MongoDB (`--mongo-url`, or a `secantusd-py` server the
//!   bench starts on a free port). Every call must be leased exactly once: the leasers'
//!   call ids are checked for duplicates and gaps, and voxbridge's campaign counts must
//!   show every call leased and none pending; otherwise the bench fails.
//! - **heartbeats** ([`heartbeats`]): `--nodes` registered fleet nodes, each on its own
//!   connection as real hosts are, heartbeat every `--heartbeat-every-ms` (2 s, as voxcore
//!   does) with `--slots` worker slots, on the embedded store. The first round (when each
//!   node connects) is warm-up; then for `--seconds` the bench records every heartbeat's
//!   latency, voxbridge's and its own CPU, and the latency of `GetDashboard` (what the
//!   console polls) every 500 ms, next to the same dashboard read before the load.
//!
//! Everything runs on this machine, so the bench's own CPU is reported beside
//! voxbridge's, and the load average before and after, as other work skews the figures.
//! Build with `--release`.

mod heartbeats;
mod leases;
mod proc;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;
use tonic::transport::Channel;
use vox_proto::backend::v1 as pb;

use crate::children::{Children, Launch};

pub use heartbeats::HeartbeatReport;
pub use leases::LeaseReport;

/// The targets issue 13 sets for this machine class.
pub const TARGET_LEASES_PER_SECOND: f64 = 5_000.0;
pub const TARGET_HEARTBEAT_P99_MS: f64 = 20.0;

const ADMIN_EMAIL: &str = "admin@vox.local";

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The voxbridge executable. [default: the one next to voxctl]
    #[arg(long)]
    pub bridge_bin: Option<PathBuf>,
    /// Calls in the campaign each store's leasers drain.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(1..=200_000))]
    pub calls: u32,
    /// Calls in the MongoDB run's campaign (a test server in Python is much slower).
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u32).range(1..=200_000))]
    pub mongo_calls: u32,
    /// Concurrent leasers (one dialler's dialling loops), each on its own connection.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub leasers: u32,
    /// Calls asked for in one `LeaseCalls` (its `max`, 1-1000).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub batch: u32,
    /// The MongoDB server for the MongoDB lease run (a fresh database is used and left
    /// behind). [default: a secantusd-py server the bench starts on a free port]
    #[arg(long, env = "VOX_BENCH_MONGO_URL")]
    pub mongo_url: Option<String>,
    /// Lease on the embedded store only.
    #[arg(long)]
    pub skip_mongo: bool,
    /// Simulated fleet nodes heartbeating against one voxbridge.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=50_000))]
    pub nodes: u32,
    /// How often each node heartbeats (voxcore: every 2 s).
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub heartbeat_every_ms: u64,
    /// Worker slots each node reports in its heartbeats.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(0..=1024))]
    pub slots: u32,
    /// How long heartbeats are measured, after one warm-up round.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub seconds: u64,
    /// Print the report as one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The machine the figures come from.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu: String,
    /// 1-minute load average before and after the run: other work on the machine.
    pub load_before: f64,
    pub load_after: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub machine: Machine,
    /// One per store: embedded (SQLite), then MongoDB.
    pub leases: Vec<LeaseReport>,
    pub heartbeats: HeartbeatReport,
    /// Whether the figures meet issue 13's targets.
    pub leases_target_met: bool,
    pub heartbeats_target_met: bool,
}

pub async fn run(args: &Args, out: &mut (impl std::io::Write + Send)) -> anyhow::Result<()> {
    let report = measure(args).await?;
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
    } else {
        print_report(args, &report, out)?;
    }
    for l in &report.leases {
        if !l.exactly_once() {
            bail!(
                "{}: calls were not leased exactly once: {} leased of {}, {} twice, voxbridge counts {} leased and {} pending",
                l.store,
                l.leased,
                l.calls,
                l.duplicates,
                l.campaign_live,
                l.campaign_pending
            );
        }
    }
    Ok(())
}

pub async fn measure(args: &Args) -> anyhow::Result<Report> {
    let program = match &args.bridge_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe().context("find voxctl")?.with_file_name("voxbridge"),
    };
    if !program.is_file() {
        bail!(
            "cannot find voxbridge at {}; build it (`cargo build --release -p voxbridge`) or pass --bridge-bin",
            program.display()
        );
    }
    let dir = tempfile::Builder::new().prefix("vox-bench-control-").tempdir().context("create a temporary folder")?;
    let load_before = proc::load_average();

    let mut leases = Vec::new();
    tracing::info!(calls = args.calls, leasers = args.leasers, batch = args.batch, "leasing on the embedded store");
    leases.push(
        on_bridge(&program, dir.path(), "sqlite", None, 0, |b| {
            leases::measure(args, b, "embedded (SQLite)", args.calls)
        })
        .await?,
    );
    if !args.skip_mongo {
        let (_mongo, url) = match &args.mongo_url {
            Some(url) => (None, url.clone()),
            None => {
                let (server, url) = start_mongo(dir.path()).await?;
                (Some(server), url)
            }
        };
        tracing::info!(calls = args.mongo_calls, "leasing on mongodb");
        let database = format!("vox_bench_{}", vox_domain::ids::random_token(8).to_lowercase());
        let store = Some((url.as_str(), database.as_str()));
        leases.push(
            on_bridge(&program, dir.path(), "mongodb", store, 0, |b| {
                leases::measure(args, b, "MongoDB", args.mongo_calls)
            })
            .await?,
        );
    }

    tracing::info!(nodes = args.nodes, every_ms = args.heartbeat_every_ms, "heartbeats on the embedded store");
    // Room for one connection per node, the leasers and the console.
    let connections = args.nodes as usize + 256;
    let heartbeats =
        on_bridge(&program, dir.path(), "heartbeats", None, connections, |b| heartbeats::measure(args, b)).await?;

    let leases_target_met =
        leases.first().is_some_and(|l| l.exactly_once() && l.leases_per_second >= TARGET_LEASES_PER_SECOND);
    let heartbeats_target_met = heartbeats.failed == 0
        && heartbeats.nodes >= 10_000
        && heartbeats.every_ms <= 2_000
        && heartbeats.latency.p99_ms < TARGET_HEARTBEAT_P99_MS;
    Ok(Report {
        machine: Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu: proc::cpu_model(),
            load_before,
            load_after: proc::load_average(),
        },
        leases,
        heartbeats,
        leases_target_met,
        heartbeats_target_met,
    })
}

/// A running voxbridge the workloads talk to, signed in as its admin.
pub struct Bridge {
    pub url: String,
    pub pid: u32,
    pub admin: Channel,
    pub token: String,
}

impl Bridge {
    /// A new connection of its own (a node's or a leaser's).
    pub fn channel(&self) -> anyhow::Result<Channel> {
        Ok(Channel::from_shared(self.url.clone())?.tcp_nodelay(true).connect_lazy())
    }

    pub async fn create_region(&self, name: &str) -> anyhow::Result<String> {
        let mut regions = pb::region_service_client::RegionServiceClient::new(self.admin.clone());
        let req = pb::CreateRegionRequest { name: name.into(), country: "US".into(), storage: None };
        let region = regions.create_region(bearer(req, &self.token)?).await.context("create a region")?;
        Ok(region.into_inner().id)
    }

    /// Registers a node; returns its id and API secret.
    pub async fn register_node(
        &self,
        kind: pb::NodeKind,
        region_id: &str,
        name: &str,
    ) -> anyhow::Result<(String, String)> {
        let mut nodes = pb::node_service_client::NodeServiceClient::new(self.admin.clone());
        let req = pb::RegisterNodeRequest {
            kind: kind as i32,
            region_id: region_id.into(),
            name: name.into(),
            endpoint: "http://127.0.0.1:9".into(),
            sip_port: 0,
        };
        let r =
            nodes.register_node(bearer(req, &self.token)?).await.with_context(|| format!("register node {name}"))?;
        let r = r.into_inner();
        Ok((r.node.context("registration returned no node")?.id, r.api_secret))
    }
}

/// Starts a voxbridge on `store` (None: its embedded SQLite store; Some: a MongoDB URL and
/// database), signs in, runs `work` against it and stops it.
async fn on_bridge<T, F, Fut>(
    program: &Path,
    dir: &Path,
    name: &str,
    store: Option<(&str, &str)>,
    max_connections: usize,
    work: F,
) -> anyhow::Result<T>
where
    F: FnOnce(Bridge) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let dir = dir.join(name);
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let password = format!("bench-{}", vox_domain::ids::random_token(16));
    let address_file = dir.join("bridge.addr");
    let mut envs = vec![("VOX_ADMIN_PASSWORD", password.clone()), ("VOX_LOG_FORMAT", "json".to_string())];
    if let Some((url, database)) = store {
        envs.push(("VOX_STORE", url.to_string()));
        envs.push(("VOX_STORE_DATABASE", database.to_string()));
    }
    if max_connections > 0 {
        envs.push(("VOX_MAX_CONNECTIONS", max_connections.to_string()));
    }
    let mut children = Children::default();
    let launch = Launch {
        name: "voxbridge".into(),
        program: program.to_path_buf(),
        args: vec![
            "--data-dir".into(),
            dir.join("data").display().to_string(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--address-file".into(),
            address_file.display().to_string(),
        ],
        envs,
    };
    let pid = children.start(launch, &dir)?.pid;
    let outcome = async {
        let url = crate::ready::address_url(&mut children, "voxbridge", &address_file).await?;
        crate::ready::healthy(&mut children, &reqwest::Client::new(), "voxbridge", &url).await?;
        let admin =
            Channel::from_shared(url.clone())?.tcp_nodelay(true).connect().await.context("connect to voxbridge")?;
        let token = pb::auth_service_client::AuthServiceClient::new(admin.clone())
            .login(pb::LoginRequest { email: ADMIN_EMAIL.into(), password })
            .await
            .context("sign in as the admin")?
            .into_inner()
            .access_token;
        work(Bridge { url, pid, admin, token }).await
    }
    .await;
    children.stop_all().await;
    outcome
}

/// A `secantusd-py` MongoDB server on a free port, storing under `dir`; stopped on drop.
async fn start_mongo(dir: &Path) -> anyhow::Result<(Children, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0").context("find a free port")?.local_addr()?.port();
    let storage = dir.join("mongo");
    std::fs::create_dir_all(&storage).with_context(|| format!("create {}", storage.display()))?;
    let mut children = Children::default();
    let launch = Launch {
        name: "secantusd".into(),
        program: "secantusd-py".into(),
        args: vec!["--port".into(), port.to_string(), "--storage-path".into(), storage.display().to_string()],
        envs: vec![],
    };
    children.start(launch, dir).context(
        "start secantusd-py, the MongoDB server the bench uses (bash ops/install-test-deps.sh installs it), \
         or pass --mongo-url or --skip-mongo",
    )?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        crate::ready::none_exited(&mut children)?;
        if std::time::Instant::now() > deadline {
            bail!("secantusd-py did not listen on port {port} within 30 s; its log is in {}", dir.display());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok((children, format!("mongodb://127.0.0.1:{port}/?directConnection=true")))
}

pub fn bearer<T>(msg: T, token: &str) -> anyhow::Result<tonic::Request<T>> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert("authorization", format!("Bearer {token}").parse().context("a token fit for a header")?);
    Ok(r)
}

/// Latency figures of a set of samples, in ms.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    pub samples: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub fn of(mut ms: Vec<f64>) -> Self {
        ms.sort_by(f64::total_cmp);
        let pick = |q: f64| {
            if ms.is_empty() {
                return f64::NAN;
            }
            let i = ((ms.len() as f64 - 1.0) * q).round() as usize;
            ms[i.min(ms.len() - 1)]
        };
        Latency { samples: ms.len(), p50_ms: pick(0.50), p99_ms: pick(0.99), max_ms: pick(1.0) }
    }
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "NO" }
}

fn print_report(args: &Args, r: &Report, out: &mut impl std::io::Write) -> anyhow::Result<()> {
    let m = &r.machine;
    writeln!(
        out,
        "machine: {} cores, {}; load average {:.2} before, {:.2} after",
        m.cores, m.cpu, m.load_before, m.load_after
    )?;
    writeln!(
        out,
        "call leases: {} calls ({} on MongoDB), {} concurrent leasers of one dialler (LeaseCalls max {}, fencing term checked), \
         through voxbridge's gRPC API",
        args.calls, args.mongo_calls, args.leasers, args.batch
    )?;
    writeln!(
        out,
        "{:<20} {:>10} {:>10} {:>11} {:>11} {:>8} {:>10} {:>12}",
        "store", "leases/s", "RPCs/s", "RPC p50 ms", "RPC p99 ms", "leased", "duplicates", "exactly once"
    )?;
    for l in &r.leases {
        writeln!(
            out,
            "{:<20} {:>10.0} {:>10.0} {:>11.2} {:>11.2} {:>8} {:>10} {:>12}",
            l.store,
            l.leases_per_second,
            l.rpcs_per_second,
            l.rpc.p50_ms,
            l.rpc.p99_ms,
            l.leased,
            l.duplicates,
            yes(l.exactly_once())
        )?;
    }
    if let [sqlite, mongo, ..] = r.leases.as_slice() {
        writeln!(
            out,
            "embedded / MongoDB: {:.1}x",
            sqlite.leases_per_second / mongo.leases_per_second.max(f64::MIN_POSITIVE)
        )?;
    }
    let h = &r.heartbeats;
    writeln!(
        out,
        "heartbeats: {} fleet nodes ({} slots each), one connection each, every {} ms, on one voxbridge \
         (embedded store); {:.0} s measured after a warm-up round",
        h.nodes, h.slots, h.every_ms, h.seconds
    )?;
    writeln!(
        out,
        "{:>12} {:>8} {:>9} {:>9} {:>9} {:>15} {:>13} {:>14}",
        "heartbeats/s", "failed", "p50 ms", "p99 ms", "max ms", "voxbridge CPU", "voxbridge MB", "bench CPU"
    )?;
    writeln!(
        out,
        "{:>12.0} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>14.0}% {:>13.0} {:>13.0}%",
        h.heartbeats_per_second,
        h.failed,
        h.latency.p50_ms,
        h.latency.p99_ms,
        h.latency.max_ms,
        h.bridge_cpu_percent,
        h.bridge_rss_mib,
        h.bench_cpu_percent
    )?;
    writeln!(out, "{:<28} {:>8} {:>9} {:>9} {:>9}", "GetDashboard", "samples", "p50 ms", "p99 ms", "max ms")?;
    for (name, d) in [("idle (nodes registered)", &h.dashboard_idle), ("under the heartbeats", &h.dashboard_loaded)] {
        writeln!(out, "{name:<28} {:>8} {:>9.2} {:>9.2} {:>9.2}", d.samples, d.p50_ms, d.p99_ms, d.max_ms)?;
    }
    for f in &h.failures {
        writeln!(out, "  failure: {f}")?;
    }
    writeln!(
        out,
        "targets: >= {TARGET_LEASES_PER_SECOND:.0} leases/s on the embedded store, exactly once: {}; \
         10,000 nodes at 2 s with heartbeat p99 < {TARGET_HEARTBEAT_P99_MS:.0} ms: {}",
        yes(r.leases_target_met),
        yes(r.heartbeats_target_met)
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_nearest_rank() {
        let l = Latency::of((1..=100).map(f64::from).collect());
        assert_eq!((l.samples, l.p50_ms, l.p99_ms, l.max_ms), (100, 51.0, 99.0, 100.0));
        assert!(Latency::of(Vec::new()).p99_ms.is_nan());
    }
}
