//! A fleet host: starts N worker processes (each its own process, restartable alone),
//! restarts any that die, and heartbeats the fleet node to voxbridge with every worker's
//! slot. The heartbeat reply's desired state is applied to the workers: maintenance
//! drains them, resume reopens them, shutdown drains them to exit and then ends the host
//! (its service manager starts it again, with a new boot id).
//!
//! Workers listen on Unix sockets (one machine) or, with `--listen-ip`, each on its own
//! TCP port, advertised as `http(s)://<advertise>:<port>` so gateways on other machines
//! reach them directly: one hop, no host-level proxy in the audio path. The host talks to
//! its workers at the same addresses, with its node secret.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use vox_node::NodeAuth;
use vox_proto::backend::v1 as bpb;
use vox_proto::common::v1::WorkerState;
use vox_proto::fleet::v1 as pb;
use vox_proto::fleet::v1::worker_service_client::WorkerServiceClient;

use crate::config::{HostArgs, socket_path};
use crate::worker::{bridge_from, node_secret, trust_cluster_ca};

type Client = WorkerServiceClient<InterceptedService<Channel, NodeAuth>>;

/// Where one worker is reached now.
#[derive(Debug, Clone)]
struct Link {
    url: String,
    client: Client,
}

/// How the host's workers are reached.
#[derive(Debug, Clone)]
enum Reach {
    /// `unix://<socket dir>/voxcore_<i>.sock`.
    Unix(PathBuf),
    /// `<scheme>://<advertise>:<port>`; worker i listens on `listen_ip`, port
    /// `base_port + i - 1`, or a port of its choosing when `base_port` is 0.
    Tcp { scheme: &'static str, advertise: String, listen_ip: IpAddr, base_port: u16 },
}

impl Reach {
    fn from_args(args: &HostArgs) -> anyhow::Result<Reach> {
        let Some(listen_ip) = args.tcp.listen_ip else {
            if args.advertise.is_some() {
                tracing::warn!(
                    "--advertise (VOX_ADVERTISE) is ignored without --listen-ip: workers are on Unix sockets"
                );
            }
            return Ok(Reach::Unix(args.socket_dir.clone()));
        };
        let base_port = args.tcp.worker_base_port;
        if base_port == 0 && !args.spawn {
            anyhow::bail!(
                "--worker-base-port (VOX_WORKER_BASE_PORT) 0 needs --spawn true: with --spawn false systemd starts \
                 the workers and nobody tells this host which ports they took; give a fixed base port (worker i \
                 listens on base + i - 1) in the environment file both units read"
            );
        }
        if base_port != 0 && u32::from(base_port) + args.workers - 1 > u32::from(u16::MAX) {
            anyhow::bail!(
                "--worker-base-port (VOX_WORKER_BASE_PORT) {base_port} + {} workers runs past port 65535",
                args.workers
            );
        }
        let advertise = match &args.advertise {
            Some(a) => advertised_host(a)?,
            None if listen_ip.is_unspecified() => anyhow::bail!(
                "--listen-ip (VOX_WORKER_LISTEN_IP) {listen_ip} listens on every address, which is none that \
                 other machines can dial: set --advertise (VOX_ADVERTISE) to this host's name or IP address"
            ),
            None => advertised_host(&listen_ip.to_string())?,
        };
        let scheme = if args.common.tls_cert.is_some() { "https" } else { "http" };
        Ok(Reach::Tcp { scheme, advertise, listen_ip, base_port })
    }

    /// Worker `index`'s URL when it is known before the worker starts.
    fn fixed_url(&self, index: u32) -> Option<String> {
        match self {
            Reach::Unix(dir) => Some(format!("unix://{}", socket_path(dir, index).display())),
            Reach::Tcp { base_port: 0, .. } => None,
            Reach::Tcp { scheme, advertise, base_port, .. } => {
                Some(format!("{scheme}://{advertise}:{}", u32::from(*base_port) + index - 1))
            }
        }
    }

    fn url_for_port(&self, port: u16) -> Option<String> {
        match self {
            Reach::Unix(_) => None,
            Reach::Tcp { scheme, advertise, .. } => Some(format!("{scheme}://{advertise}:{port}")),
        }
    }
}

/// `host` as it goes in a URL: a name or IPv4 address as is, an IPv6 address in brackets.
fn advertised_host(host: &str) -> anyhow::Result<String> {
    let host = host.trim();
    if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        if ip.is_unspecified() {
            anyhow::bail!("--advertise (VOX_ADVERTISE) {ip} is not an address other machines can dial");
        }
        return Ok(match ip {
            IpAddr::V6(v6) => format!("[{v6}]"),
            IpAddr::V4(v4) => v4.to_string(),
        });
    }
    let name_ok = !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if !name_ok {
        anyhow::bail!(
            "--advertise (VOX_ADVERTISE) {host:?}: expected a host name or IP address, without scheme or port \
             (e.g. fleet-1.internal or 10.0.0.5)"
        );
    }
    Ok(host.to_string())
}

#[derive(Debug)]
struct Workers {
    links: BTreeMap<u32, Mutex<Option<Link>>>,
    /// The host's credentials to its workers: the node secret they share.
    auth: NodeAuth,
    node_id: String,
    /// Beats in a row each worker did not answer.
    misses: Mutex<BTreeMap<u32, u32>>,
    applied: Mutex<bpb::DesiredState>,
    stop: watch::Sender<bool>,
    /// Each worker's last answer, for `/metrics`.
    polled: Arc<crate::host_metrics::Polled>,
    /// Calls each worker holds (`--max-concurrent-calls`): the slots it is advertised as.
    calls_per_worker: u32,
}

/// The slots worker `index` is advertised as, from its `status`: one per call it may hold,
/// all at its address. Worker i of N calls each is slots (i-1)·N+1 … i·N, so a gateway
/// counts its capacity with no field for it in the heartbeat, and a worker of one call
/// (the default) is slot i as before. Which of a worker's slots show busy says only how
/// many are: `worker_calls` of them in call (the first with the call id the worker
/// names), the first reserved when it holds reservations and no call, the rest idle. A
/// gateway that picks a slot the worker has no room for hears RESOURCE_EXHAUSTED and
/// moves on, as with any slot busy by hearsay.
fn advertised_slots(index: u32, calls_per_worker: u32, status: &pb::WorkerStatus, url: &str) -> Vec<bpb::WorkerSlot> {
    let n = calls_per_worker.max(1);
    if n == 1 {
        return vec![bpb::WorkerSlot {
            index,
            state: status.state,
            call_id: status.call_id.clone(),
            endpoint: url.to_string(),
        }];
    }
    let draining = status.state == WorkerState::Draining as i32;
    (0..n)
        .map(|j| {
            let state = if draining {
                WorkerState::Draining
            } else if j < status.worker_calls {
                WorkerState::InCall
            } else if j == 0 && status.state == WorkerState::Reserved as i32 {
                WorkerState::Reserved
            } else {
                WorkerState::Idle
            };
            let busy = matches!(state, WorkerState::InCall | WorkerState::Reserved);
            bpb::WorkerSlot {
                index: index.saturating_sub(1) * n + j + 1,
                state: state as i32,
                call_id: if j == 0 && busy { status.call_id.clone() } else { String::new() },
                endpoint: url.to_string(),
            }
        })
        .collect()
}

impl Workers {
    fn link(&self, index: u32) -> Option<Link> {
        self.links.get(&index)?.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Points worker `index` at `url` (None: not reachable now, e.g. between restarts).
    fn set(&self, index: u32, url: Option<String>) -> anyhow::Result<()> {
        let link = match url {
            Some(url) => {
                let channel = vox_node::channel::connect_lazy(&url).map_err(|e| anyhow::anyhow!(e.message))?;
                let client = WorkerServiceClient::new(InterceptedService::new(channel, self.auth.clone()));
                Some(Link { url, client })
            }
            None => None,
        };
        if let Some(slot) = self.links.get(&index) {
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = link;
        }
        Ok(())
    }

    /// Notes whether worker `index` answered at `url`; says so in the log when it has
    /// not for several beats in a row (not at once: a starting worker misses a few), as
    /// a wrong --advertise, an untrusted certificate or a firewall look just like this.
    fn answered(&self, index: u32, url: &str, error: Option<String>) {
        const SAY_AFTER: u32 = 5;
        let mut misses = self.misses.lock().unwrap_or_else(|p| p.into_inner());
        let n = misses.entry(index).or_default();
        match error {
            Some(error) => {
                *n += 1;
                if *n == SAY_AFTER {
                    tracing::warn!(
                        worker = index,
                        url,
                        error,
                        "the worker does not answer its host at its address; it is left out of the heartbeats (check --advertise, --tls-ca and firewalls)"
                    );
                }
            }
            None => {
                if *n >= SAY_AFTER {
                    tracing::info!(worker = index, url, "the worker answers its host again");
                }
                *n = 0;
            }
        }
    }

    async fn each(&self, f: impl Fn(Client) -> futures::future::BoxFuture<'static, ()>) {
        let clients: Vec<Client> = self.links.keys().filter_map(|i| self.link(*i)).map(|l| l.client).collect();
        futures::future::join_all(clients.into_iter().map(f)).await;
    }
}

impl vox_node::heartbeat::HeartbeatSource for Workers {
    async fn slots(&self) -> Vec<bpb::WorkerSlot> {
        let mut out = Vec::new();
        for index in self.links.keys() {
            let Some(Link { url, mut client }) = self.link(*index) else { continue };
            let status = tokio::time::timeout(Duration::from_millis(800), client.status(pb::StatusRequest {})).await;
            // A worker that does not answer has no slot to offer: leave it out.
            match status {
                Ok(Ok(s)) => {
                    self.answered(*index, &url, None);
                    let s = s.into_inner();
                    out.extend(advertised_slots(*index, self.calls_per_worker, &s, &url));
                    self.polled.set(*index, Some(s));
                }
                Ok(Err(e)) => {
                    self.answered(*index, &url, Some(format!("{:?}: {}", e.code(), e.message())));
                    self.polled.set(*index, None);
                }
                Err(_) => {
                    self.answered(*index, &url, Some("no answer within 800 ms".into()));
                    self.polled.set(*index, None);
                }
            }
        }
        out
    }

    async fn desired(&self, state: bpb::DesiredState) {
        let previous = {
            let mut applied = self.applied.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::replace(&mut *applied, state)
        };
        if previous == state {
            return;
        }
        tracing::info!(from = ?previous, to = ?state, "applying the desired state to the workers");
        match state {
            bpb::DesiredState::Maintenance | bpb::DesiredState::Disabled => {
                self.each(|mut c| {
                    Box::pin(async move {
                        let _ = c.drain(pb::DrainRequest { exit_when_idle: false }).await;
                    })
                })
                .await;
            }
            bpb::DesiredState::Shutdown => {
                let _ = self.stop.send(true);
                self.each(|mut c| {
                    Box::pin(async move {
                        let _ = c.drain(pb::DrainRequest { exit_when_idle: true }).await;
                    })
                })
                .await;
            }
            bpb::DesiredState::Active | bpb::DesiredState::Unspecified => {
                self.each(|mut c| {
                    Box::pin(async move {
                        let _ = c.resume(pb::ResumeRequest {}).await;
                    })
                })
                .await;
            }
        }
    }
}

/// Where worker `index` of node `node_id` writes its address when it picks its own port.
/// Named by node too: two hosts on one machine may share a socket folder.
fn address_file(dir: &Path, node_id: &str, index: u32) -> PathBuf {
    dir.join(format!("voxcore_{index}.{node_id}.addr"))
}

/// The port in a worker's address file (`http://host:port` or `https://host:port`),
/// once the worker has written it whole.
fn port_in(text: &str) -> Option<u16> {
    let text = text.trim();
    let hostport = text.strip_prefix("http://").or_else(|| text.strip_prefix("https://"))?;
    hostport.parse::<SocketAddr>().ok().map(|a| a.port())
}

/// Waits until the worker writes its address to `file`, and returns the port.
async fn learn_port(file: &Path) -> u16 {
    loop {
        if let Some(port) = std::fs::read_to_string(file).ok().as_deref().and_then(port_in) {
            return port;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts worker `index` again whenever it exits, until `stop`.
async fn supervise(index: u32, args: HostArgs, reach: Reach, workers: Arc<Workers>, stop: watch::Receiver<bool>) {
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "cannot find the voxcore executable to start workers");
            return;
        }
    };
    let node_id = workers.node_id.clone();
    loop {
        let mut cmd = tokio::process::Command::new(&exe);
        cmd.arg("worker")
            .arg("--index")
            .arg(index.to_string())
            .arg("--socket-dir")
            .arg(&args.socket_dir)
            .arg("--exit-with-parent")
            .args(args.common.to_worker_args())
            // Where a worker listens is this host's decision alone, never the environment's.
            .env_remove("VOX_WORKER_LISTEN")
            .env_remove("VOX_WORKER_LISTEN_IP")
            .env_remove("VOX_WORKER_BASE_PORT")
            .env_remove("VOX_ADDRESS_FILE")
            .kill_on_drop(false);
        let mut learn_from = None;
        if let Reach::Tcp { listen_ip, base_port, .. } = &reach {
            let port = if *base_port == 0 { 0 } else { *base_port + (index - 1) as u16 };
            cmd.arg("--listen").arg(SocketAddr::new(*listen_ip, port).to_string());
            if port == 0 {
                let file = address_file(&args.socket_dir, &node_id, index);
                let _ = std::fs::remove_file(&file);
                cmd.arg("--address-file").arg(&file);
                learn_from = Some(file);
            }
        }
        if let Some(secret) = &args.common.node_secret {
            // Through the environment, never argv: other users can read argv in ps.
            cmd.env("VOX_NODE_SECRET", secret);
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(worker = index, error = %e, "cannot start worker; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        let pid = child.id();
        let mut stop_wait = stop.clone();
        // A worker on a port of its choosing: heartbeat its address once it says it.
        let learn = async {
            if let Some(file) = &learn_from {
                let port = learn_port(file).await;
                let url = reach.url_for_port(port);
                tracing::info!(worker = index, url = url.as_deref().unwrap_or_default(), "worker listening");
                if let Err(e) = workers.set(index, url) {
                    tracing::error!(worker = index, error = %e, "cannot make a client for the worker");
                }
            }
            std::future::pending::<()>().await;
        };
        tokio::select! {
            status = child.wait() => {
                if learn_from.is_some() {
                    // Its next run may take another port; until then it has no address.
                    let _ = workers.set(index, None);
                }
                if *stop.borrow() {
                    return;
                }
                tracing::warn!(worker = index, status = ?status.ok(), "worker exited; restarting it");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            () = async { let _ = stop_wait.wait_for(|s| *s).await; } => {
                // Ask the worker to finish its call and exit, then wait for it.
                if let Some(pid) = pid {
                    let _ = tokio::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status().await;
                }
                let _ = child.wait().await;
                return;
            }
            () = learn => {}
        }
    }
}

pub async fn run(args: HostArgs, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    trust_cluster_ca(&args.common)?;
    vox_node::tls::TlsFiles::from_flags(args.common.tls_cert.as_deref(), args.common.tls_key.as_deref())?;
    let bridge = bridge_from(&args.common)?.context(
        "a fleet host heartbeats to voxbridge: set --bridge-url (VOX_BRIDGE_URL) and --node-secret (VOX_NODE_SECRET)",
    )?;
    let secret = node_secret(&args.common)?.context("--node-secret (VOX_NODE_SECRET) is required")?;
    if args.workers == 0 || args.workers > 1024 {
        anyhow::bail!("--workers (VOX_WORKERS) must be 1-1024, not {}", args.workers);
    }
    let calls = args.common.max_concurrent_calls.max(1);
    if u64::from(args.workers) * u64::from(calls) > 1024 {
        anyhow::bail!(
            "--workers ({}) x --max-concurrent-calls ({calls}) is more than 1024 slots, a fleet node's most; \
             run fewer workers or fewer calls per worker",
            args.workers
        );
    }
    let reach = Reach::from_args(&args)?;
    if let Reach::Tcp { base_port: 0, .. } = reach {
        std::fs::create_dir_all(&args.socket_dir)
            .with_context(|| format!("create socket dir {} (workers' address files)", args.socket_dir.display()))?;
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let workers = Arc::new(Workers {
        links: (1..=args.workers).map(|i| (i, Mutex::new(None))).collect(),
        auth: NodeAuth::new(secret),
        node_id: bridge.node_id().to_string(),
        misses: Mutex::default(),
        applied: Mutex::new(bpb::DesiredState::Active),
        stop: stop_tx.clone(),
        polled: Arc::default(),
        calls_per_worker: calls,
    });
    let metrics = serve_metrics(&args.metrics_listen, Arc::clone(&workers.polled), stop_rx.clone()).await?;
    for i in 1..=args.workers {
        workers.set(i, reach.fixed_url(i))?;
    }

    let mut supervisors = Vec::new();
    if args.spawn {
        for i in 1..=args.workers {
            supervisors.push(tokio::spawn(supervise(
                i,
                args.clone(),
                reach.clone(),
                Arc::clone(&workers),
                stop_rx.clone(),
            )));
        }
    }
    let first = workers.link(1).map(|l| l.url);
    tracing::info!(
        node_id = bridge.node_id(),
        workers = args.workers,
        spawn = args.spawn,
        worker_1 = first.as_deref().unwrap_or("(a port of its choosing)"),
        "voxcore host started"
    );
    // Each worker fetches the region's storage itself; the host fetches it once too, so
    // its log says where this host's recordings go (or why voxbridge has not said yet).
    tokio::spawn({
        let storage = crate::storage::RegionStorage::new(Some(bridge.clone()), args.common.recordings_dir.clone());
        async move { storage.announce().await }
    });
    let beat = tokio::spawn(vox_node::heartbeat::run(
        bridge,
        vox_node::new_boot_id(),
        vox_telemetry::build::FULL_VERSION,
        Arc::clone(&workers),
        stop_rx.clone(),
    ));

    let mut stopped = stop_rx.clone();
    tokio::select! {
        () = shutdown => {
            tracing::info!("asked to stop: workers finish their calls, then exit");
            let _ = stop_tx.send(true);
        }
        _ = stopped.wait_for(|s| *s) => tracing::info!("shutdown requested by voxbridge: draining, then exiting"),
    }
    for s in supervisors {
        let _ = s.await;
    }
    beat.abort();
    if let Some(m) = metrics {
        m.abort();
    }
    tracing::info!("voxcore host stopped");
    Ok(())
}

/// Serves `/metrics` on `listen` until `stop`; "off" serves nothing. A bad address is an
/// error; a taken port only a warning (see [`crate::host_metrics`]).
async fn serve_metrics(
    listen: &str,
    polled: Arc<crate::host_metrics::Polled>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    if listen.trim().eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let addr: std::net::SocketAddr = listen.trim().parse().map_err(|_| {
        anyhow::anyhow!(
            "--metrics-listen (VOX_METRICS_LISTEN) {listen:?}: expected ip:port (e.g. 127.0.0.1:7100) or \"off\""
        )
    })?;
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(%addr, error = %e, "host metrics not served: cannot listen there (set --metrics-listen)");
            return Ok(None);
        }
    };
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(crate::host_metrics::HostMetrics(polled)));
    let registry = Arc::new(registry);
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let registry = Arc::clone(&registry);
            async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
                    vox_telemetry::metrics::render("voxcore", &registry),
                )
            }
        }),
    );
    tracing::info!(addr = %listener.local_addr()?, "host metrics at /metrics");
    let limits = vox_node::server::Limits::with_max_connections(64);
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    Ok(Some(tokio::spawn(async move {
        if let Err(e) = vox_node::server::serve(listener, app, None, limits, stopped, Duration::from_secs(1)).await {
            tracing::warn!(error = %e, "host metrics server stopped");
        }
    })))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use clap::Parser;

    use super::*;
    use crate::config::{Cli, Command};

    fn host(flags: &[&str]) -> HostArgs {
        let argv = ["voxcore", "host", "--socket-dir", "/run/vox"].iter().chain(flags);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Host(h) => h,
            Command::Worker(_) => unreachable!(),
        }
    }

    #[test]
    fn workers_are_advertised_where_other_machines_reach_them() {
        let unix = Reach::from_args(&host(&[])).unwrap();
        assert_eq!(unix.fixed_url(2).unwrap(), "unix:///run/vox/voxcore_2.sock");
        let tcp = Reach::from_args(&host(&["--listen-ip", "10.0.0.5"])).unwrap();
        assert_eq!(tcp.fixed_url(1).unwrap(), "http://10.0.0.5:7101");
        assert_eq!(tcp.fixed_url(4).unwrap(), "http://10.0.0.5:7104");
        let named = Reach::from_args(&host(&[
            "--listen-ip",
            "0.0.0.0",
            "--advertise",
            "fleet-1.internal",
            "--worker-base-port",
            "9000",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
        ]))
        .unwrap();
        assert_eq!(named.fixed_url(2).unwrap(), "https://fleet-1.internal:9001");
        let v6 = Reach::from_args(&host(&["--listen-ip", "fd00::5"])).unwrap();
        assert_eq!(v6.fixed_url(1).unwrap(), "http://[fd00::5]:7101");
        let ephemeral = Reach::from_args(&host(&["--listen-ip", "127.0.0.2", "--worker-base-port", "0"])).unwrap();
        assert_eq!(ephemeral.fixed_url(1), None);
        assert_eq!(ephemeral.url_for_port(40001).unwrap(), "http://127.0.0.2:40001");
    }

    #[test]
    fn unreachable_or_unknowable_addresses_are_refused() {
        let err = |flags: &[&str]| Reach::from_args(&host(flags)).unwrap_err().to_string();
        assert!(err(&["--listen-ip", "0.0.0.0"]).contains("--advertise"));
        assert!(err(&["--listen-ip", "10.0.0.5", "--advertise", "http://x:1"]).contains("without scheme or port"));
        let systemd = err(&["--listen-ip", "10.0.0.5", "--spawn", "false", "--worker-base-port", "0"]);
        assert!(systemd.contains("--spawn false") && systemd.contains("fixed base port"), "{systemd}");
        assert!(err(&["--listen-ip", "10.0.0.5", "--worker-base-port", "65535", "--workers", "2"]).contains("65535"));
    }

    #[test]
    fn a_worker_of_several_calls_is_advertised_as_that_many_slots() {
        let status = |state: WorkerState, calls: u32| pb::WorkerStatus {
            state: state as i32,
            worker_calls: calls,
            call_id: if calls > 0 || state == WorkerState::Reserved {
                "ca_0123456789abcdef".into()
            } else {
                String::new()
            },
            ..Default::default()
        };
        let url = "unix:///run/vox/voxcore_2.sock";
        // One call per worker: worker 2 is slot 2, as the gateway has always seen it.
        let one = advertised_slots(2, 1, &status(WorkerState::InCall, 1), url);
        assert_eq!(one.len(), 1);
        assert_eq!(
            (one[0].index, one[0].state, one[0].call_id.as_str()),
            (2, WorkerState::InCall as i32, "ca_0123456789abcdef")
        );
        // Four calls per worker: worker 2 is slots 5-8 at its one address, two of them busy.
        let four = advertised_slots(2, 4, &status(WorkerState::InCall, 2), url);
        assert_eq!(four.iter().map(|w| w.index).collect::<Vec<_>>(), [5, 6, 7, 8]);
        assert!(four.iter().all(|w| w.endpoint == url));
        let states: Vec<i32> = four.iter().map(|w| w.state).collect();
        let (busy, idle) = (WorkerState::InCall as i32, WorkerState::Idle as i32);
        assert_eq!(states, [busy, busy, idle, idle]);
        assert_eq!(four[0].call_id, "ca_0123456789abcdef");
        // A reservation awaiting its stream shows on the first slot; a drain on every one.
        let reserved = advertised_slots(1, 4, &status(WorkerState::Reserved, 0), url);
        assert_eq!(reserved[0].state, WorkerState::Reserved as i32);
        assert!(reserved[1..].iter().all(|w| w.state == idle));
        let draining = advertised_slots(1, 4, &status(WorkerState::Draining, 1), url);
        assert!(draining.iter().all(|w| w.state == WorkerState::Draining as i32));
    }

    #[test]
    fn the_port_is_read_from_a_whole_address_file_only() {
        assert_eq!(port_in("http://127.0.0.2:40001\n"), Some(40001));
        assert_eq!(port_in("https://[::1]:443"), Some(443));
        assert_eq!(port_in("http://127.0.0.2:"), None);
        assert_eq!(port_in(""), None);
    }
}
