//! The heartbeat workload: many fleet nodes, each on its own connection, heartbeating
//! on a fixed period against one voxbridge, and the console's dashboard read meanwhile.
//!
//! Node i's heartbeats start at `i / nodes` of a period, so the load is even, as it is
//! for a fleet that did not all boot in the same millisecond. Each node heartbeats on
//! its own clock and skips a beat it missed (voxcore's behaviour), so a slow voxbridge
//! shows as latency, not as a burst the bench makes up. Each heartbeat carries the
//! node's worker slots, as a real fleet host's does.

use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use serde::Serialize;
use tokio::time::MissedTickBehavior;
use vox_proto::backend::v1 as pb;
use vox_proto::common::v1 as common;

use super::{Args, Bridge, Latency, bearer, proc};

/// Node registrations in flight at once (setup, not timed).
const REGISTERING: usize = 16;
/// A real node's deadline: voxcore gives up on a heartbeat after 10 s.
const HEARTBEAT_DEADLINE: Duration = Duration::from_secs(10);
/// How often the console-like client reads the dashboard.
const DASHBOARD_EVERY: Duration = Duration::from_millis(500);
/// Dashboard reads before the heartbeats start.
const IDLE_DASHBOARD_READS: usize = 20;

#[derive(Debug, Clone, Serialize)]
pub struct HeartbeatReport {
    pub nodes: u32,
    pub slots: u32,
    pub every_ms: u64,
    pub seconds: f64,
    /// Heartbeats answered or failed in the measured window, per second.
    pub heartbeats_per_second: f64,
    pub latency: Latency,
    pub failed: u64,
    /// First ten failures.
    pub failures: Vec<String>,
    /// voxbridge's CPU over the window, in % of one core.
    pub bridge_cpu_percent: f64,
    pub bridge_rss_mib: f64,
    /// This bench's own CPU (all nodes and the console), in % of one core.
    pub bench_cpu_percent: f64,
    /// GetDashboard before the heartbeats (nodes registered, none online) and under them.
    pub dashboard_idle: Latency,
    pub dashboard_loaded: Latency,
}

pub async fn measure(args: &Args, bridge: Bridge) -> anyhow::Result<HeartbeatReport> {
    let region = bridge.create_region("bench-heartbeats").await?;
    let registered: Vec<anyhow::Result<(String, String)>> = futures::stream::iter(0..args.nodes)
        .map(|i| {
            let (bridge, region) = (&bridge, &region);
            async move { bridge.register_node(pb::NodeKind::Fleet, region, &format!("bench-node-{i}")).await }
        })
        .buffer_unordered(REGISTERING)
        .collect()
        .await;
    let nodes = registered.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    tracing::info!(nodes = nodes.len(), "nodes registered");

    let mut idle = Vec::new();
    for _ in 0..IDLE_DASHBOARD_READS {
        idle.push(dashboard_ms(&bridge).await?);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let every = Duration::from_millis(args.heartbeat_every_ms);
    let length = Duration::from_secs(args.seconds);
    let t0 = tokio::time::Instant::now() + Duration::from_millis(200);
    // One round to connect every node, then the measured window.
    let window = (t0 + every, t0 + every + length);
    let mut tasks = Vec::with_capacity(nodes.len());
    let count = nodes.len() as u32;
    for (i, (id, secret)) in nodes.into_iter().enumerate() {
        let start = t0 + every.mul_f64(f64::from(i as u32) / f64::from(count));
        let client = pb::node_service_client::NodeServiceClient::new(bridge.channel()?);
        let beat = heartbeat(id, args.slots);
        tasks.push(tokio::spawn(node(client, beat, secret, start, every, window)));
    }

    tokio::time::sleep_until(window.0).await;
    let ticks = proc::ticks_per_second() as f64;
    let pid = bridge.pid.to_string();
    let cpu_before = (proc::cpu_ticks(&pid), proc::cpu_ticks("self"));
    let measured_from = Instant::now();
    let mut loaded = Vec::new();
    while tokio::time::Instant::now() + DASHBOARD_EVERY < window.1 {
        let started = tokio::time::Instant::now();
        loaded.push(dashboard_ms(&bridge).await?);
        tokio::time::sleep_until(started + DASHBOARD_EVERY).await;
    }
    tokio::time::sleep_until(window.1).await;
    let cpu_after = (proc::cpu_ticks(&pid), proc::cpu_ticks("self"));
    let seconds = measured_from.elapsed().as_secs_f64();
    let bridge_rss_mib = proc::rss_mib(bridge.pid);
    let percent = |before: Option<u64>, after: Option<u64>| match (before, after) {
        (Some(b), Some(a)) => (a.saturating_sub(b)) as f64 / ticks / seconds * 100.0,
        _ => f64::NAN,
    };

    let mut latencies = Vec::new();
    let mut failures = Vec::new();
    for t in tasks {
        let (ms, failed) = t.await.context("node task")?;
        latencies.extend(ms);
        failures.extend(failed);
    }
    let failed = failures.len() as u64;
    failures.truncate(10);
    Ok(HeartbeatReport {
        nodes: count,
        slots: args.slots,
        every_ms: args.heartbeat_every_ms,
        seconds,
        heartbeats_per_second: (latencies.len() as u64 + failed) as f64 / length.as_secs_f64(),
        latency: Latency::of(latencies),
        failed,
        failures,
        bridge_cpu_percent: percent(cpu_before.0, cpu_after.0),
        bridge_rss_mib,
        bench_cpu_percent: percent(cpu_before.1, cpu_after.1),
        dashboard_idle: Latency::of(idle),
        dashboard_loaded: Latency::of(loaded),
    })
}

/// A fleet host's heartbeat with `slots` idle workers on Unix sockets.
fn heartbeat(node_id: String, slots: u32) -> pb::HeartbeatRequest {
    pb::HeartbeatRequest {
        node_id,
        boot_id: vox_domain::ids::random_token(12),
        version: "bench".into(),
        cpu_percent: 12.5,
        memory_used_bytes: 512 << 20,
        memory_total_bytes: 8 << 30,
        workers: (1..=slots)
            .map(|index| pb::WorkerSlot {
                index,
                state: common::WorkerState::Idle as i32,
                call_id: String::new(),
                endpoint: format!("unix:///run/vox/voxcore_{index}.sock"),
            })
            .collect(),
    }
}

/// One node: heartbeats every `every` from `start` until the window ends; returns the
/// latencies (ms) and failures of the heartbeats sent inside the window.
async fn node(
    mut client: pb::node_service_client::NodeServiceClient<tonic::transport::Channel>,
    beat: pb::HeartbeatRequest,
    secret: String,
    start: tokio::time::Instant,
    every: Duration,
    window: (tokio::time::Instant, tokio::time::Instant),
) -> (Vec<f64>, Vec<String>) {
    let mut latencies = Vec::new();
    let mut failures = Vec::new();
    let mut tick = tokio::time::interval_at(start, every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        let sent = tick.tick().await;
        if sent >= window.1 {
            break;
        }
        let measured = sent >= window.0;
        let req = match bearer(beat.clone(), &secret) {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{}: {e:#}", beat.node_id));
                break;
            }
        };
        let started = Instant::now();
        let outcome = tokio::time::timeout(HEARTBEAT_DEADLINE, client.heartbeat(req)).await;
        if !measured {
            continue;
        }
        match outcome {
            Ok(Ok(_)) => latencies.push(started.elapsed().as_secs_f64() * 1000.0),
            Ok(Err(s)) => failures.push(format!("{}: {:?}: {}", beat.node_id, s.code(), s.message())),
            Err(_) => failures.push(format!("{}: no answer within {} s", beat.node_id, HEARTBEAT_DEADLINE.as_secs())),
        }
    }
    (latencies, failures)
}

/// One `GetDashboard` as the admin, in ms.
async fn dashboard_ms(bridge: &Bridge) -> anyhow::Result<f64> {
    let mut dashboards = pb::dashboard_service_client::DashboardServiceClient::new(bridge.admin.clone());
    let started = Instant::now();
    dashboards.get_dashboard(bearer(pb::GetDashboardRequest {}, &bridge.token)?).await.context("read the dashboard")?;
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}
