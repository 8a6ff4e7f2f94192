//! voxgate, the Vox edge: HTTP/WSS on one port for carrier media streams (Twilio Media
//! Streams today, one adapter per dialect in [`media`]), the seeds' fleet routes
//! (`GET /health`, `GET /health/fleet`), the console REST API (`voxgate-rest`, under
//! `/api/v1`), the web console's files at `/` ([`console`]) and `/metrics`; HTTPS/WSS
//! itself with `--tls-cert`/`--tls-key`. It picks worker slots by region and load
//! ([`fleet`]), holds a call's slot for the whole call, and talks to workers with a worker
//! token from voxbridge.
//!
//! The edge keeps no state another gateway cannot find: web-session tokens are stream
//! tokens voxbridge signs (any gateway checks them), and an answered outbound call's
//! TwiML names the worker reserved for it, so its stream may reach any gateway.
//!
//! WebSocket routes answer only real upgrades (`Connection: upgrade` and
//! `Upgrade: websocket`); everything else is plain HTTP, so a POST never meets a
//! WebSocket handler (the seeds' 422 incident).

pub mod config;
pub mod console;
pub mod fleet;
mod forwarded;
mod inbound;
mod limits;
mod livekit;
pub mod media;
pub mod metrics;
pub mod outbound;
mod reservation;
mod routes;
mod web_sessions;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use vox_node::tokens::{ClusterKey, GatewayCredential};
use vox_node::{Bridge, NodeSecret};
use vox_proto::backend::v1 as bpb;

use crate::config::Args;
use crate::fleet::{Fleet, WorkerClient};
use crate::metrics::Metrics;

/// What every request handler shares.
#[derive(Debug)]
pub struct Gate {
    pub args: Args,
    pub bridge: Bridge,
    pub fleet: Arc<Fleet>,
    pub metrics: Metrics,
    /// Maintenance, shutdown or disable from voxbridge: no new streams.
    pub draining: AtomicBool,
    /// This gateway's worker token, which every worker client carries.
    pub credential: GatewayCredential,
    /// voxbridge's public key, which checks stream tokens (web sessions).
    pub cluster_key: ClusterKey,
    /// Serving HTTPS/WSS: the URLs handed out say wss:// (without --public-url).
    pub tls: bool,
    /// voxbridge without the node's credentials, for calls made with a user's token.
    pub rest_channel: tonic::transport::Channel,
    /// Outgoing HTTP (LiveKit's API).
    pub http: reqwest::Client,
    /// Per-client request and sign-in budgets.
    pub limits: Arc<limits::Limits>,
}

impl vox_node::heartbeat::HeartbeatSource for Gate {
    async fn slots(&self) -> Vec<bpb::WorkerSlot> {
        Vec::new()
    }

    async fn desired(&self, state: bpb::DesiredState) {
        let drain = state != bpb::DesiredState::Active;
        if self.draining.swap(drain, Ordering::SeqCst) != drain {
            tracing::info!(desired = ?state, "gateway {}", if drain { "stops taking new streams" } else { "takes streams again" });
        }
    }
}

/// Refreshes the fleet from voxbridge and the static worker list.
async fn refresh(gate: &Gate, statics: &[(String, WorkerClient)]) {
    if gate.fleet.region().is_none() {
        // The gateway's own region: its workers are preferred.
        let me = bpb::GetNodeRequest { id: gate.bridge.node_id().to_string() };
        match gate.bridge.nodes().get_node(me).await {
            Ok(n) => {
                let region = n.into_inner().region_id;
                tracing::info!(region_id = %region, "workers of this region are preferred");
                gate.fleet.set_region(&region);
            }
            Err(s) => tracing::warn!(code = ?s.code(), error = s.message(), "cannot read this gateway's region yet"),
        }
    }
    let req = bpb::ListNodesRequest { region_id: String::new(), kind: bpb::NodeKind::Fleet as i32 };
    match gate.bridge.nodes().list_nodes(req).await {
        Ok(r) => gate.fleet.apply_nodes(&r.into_inner().nodes),
        Err(s) => {
            tracing::warn!(code = ?s.code(), error = s.message(), "cannot read the fleet from voxbridge; keeping the last view")
        }
    }
    for (url, client) in statics {
        let mut c = client.clone();
        let status =
            tokio::time::timeout(Duration::from_millis(800), c.status(vox_proto::fleet::v1::StatusRequest {})).await;
        let status = status.ok().and_then(Result::ok).map(tonic::Response::into_inner);
        gate.fleet.apply_static(url, client, status.as_ref());
    }
    gate.metrics.slots_free.set(i64::from(gate.fleet.available()));
    gate.metrics.slots_total.set(i64::from(gate.fleet.total()));
}

/// How long open requests may take to finish once shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves voxgate on `listener` (HTTPS/WSS with `--tls-cert`) until `shutdown` resolves.
pub async fn run(
    args: Args,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Before any link is made: https:// links trust this CA from their creation on.
    if let Some(ca) = &args.tls_ca {
        vox_node::tls::trust_ca_file(ca)?;
    }
    let tls = vox_node::tls::TlsFiles::from_flags(args.tls_cert.as_deref(), args.tls_key.as_deref())?;
    let secret = NodeSecret::parse("--node-secret (VOX_NODE_SECRET)", &args.node_secret)
        .map_err(|e| anyhow::anyhow!(e.message))?;
    let bridge = Bridge::new(&args.bridge_url, secret).map_err(|e| anyhow::anyhow!(e.message))?;
    let credential = GatewayCredential::renew_from(bridge.clone());
    let cluster_key = ClusterKey::fetch_from(bridge.clone());
    let fleet = Arc::new(Fleet::new(credential.interceptor()));
    let mut statics = Vec::new();
    for url in args.fleet_urls.iter().map(|u| u.trim()).filter(|u| !u.is_empty()) {
        let client = fleet.client(url).map_err(|e| anyhow::anyhow!("FLEET_URLS: {}", e.message))?;
        statics.push((url.to_string(), client));
    }
    let rest_channel = vox_node::channel::endpoint("--bridge-url (VOX_BRIDGE_URL)", &args.bridge_url)
        .map_err(|e| anyhow::anyhow!(e.message))?
        .connect_timeout(Duration::from_secs(3))
        .connect_lazy();
    let args_rate = (args.rate_limit_per_second, args.login_attempts_per_minute);
    let gate = Arc::new(Gate {
        args,
        bridge: bridge.clone(),
        fleet,
        metrics: Metrics::default(),
        draining: AtomicBool::new(false),
        credential,
        cluster_key,
        tls: tls.is_some(),
        rest_channel: rest_channel.clone(),
        http: reqwest::Client::new(),
        limits: Arc::new(limits::Limits::new(args_rate.0, args_rate.1)),
    });

    // Workers refuse a gateway without a worker token: get one before taking traffic
    // (voxbridge being away is no reason not to start; calls wait for it then).
    let waited = tokio::time::Instant::now();
    while !gate.credential.ready() && waited.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !gate.credential.ready() {
        tracing::warn!("no worker token from voxbridge yet; calls wait for one");
    }
    // Learn the fleet (and who is busy) before taking traffic.
    refresh(&gate, &statics).await;
    let refresher = {
        let gate = Arc::clone(&gate);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                refresh(&gate, &statics).await;
            }
        })
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let beat = tokio::spawn(vox_node::heartbeat::run(
        bridge,
        vox_node::new_boot_id(),
        vox_telemetry::build::FULL_VERSION,
        Arc::clone(&gate),
        stop_rx.clone(),
    ));

    let console_beat = match &gate.args.console_node_secret {
        Some(secret) => {
            let secret = vox_node::NodeSecret::parse("--console-node-secret (VOX_CONSOLE_NODE_SECRET)", secret)
                .map_err(|e| anyhow::anyhow!(e.message))?;
            let console = Bridge::new(&gate.args.bridge_url, secret).map_err(|e| anyhow::anyhow!(e.message))?;
            Some(tokio::spawn(vox_node::heartbeat::run(
                console,
                vox_node::new_boot_id(),
                vox_telemetry::build::FULL_VERSION,
                Arc::new(vox_node::heartbeat::NoSlots),
                stop_rx.clone(),
            )))
        }
        None => None,
    };
    let mut rest_config = voxgate_rest::RestConfig::new(rest_channel);
    rest_config.node_secret = Some(gate.bridge.secret().authorization());
    rest_config.max_upload_rows = usize::try_from(gate.args.max_upload_rows).unwrap_or(usize::MAX);
    if let Some(url) = &gate.args.dialler_url {
        rest_config.dialler =
            Some(vox_node::channel::connect_lazy(url).map_err(|e| anyhow::anyhow!("--dialler-url: {}", e.message))?);
    }
    let limits = Arc::clone(&gate.limits);
    let app = routes::router(Arc::clone(&gate))
        .merge(voxgate_rest::router(rest_config))
        .merge(console::router(console::Console::new(gate.args.console_dir.clone())))
        .layer(axum::middleware::from_fn_with_state(limits, limits::enforce))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(forwarded::TrustedProxies(gate.args.trusted_proxies.clone())),
            forwarded::resolve,
        ));
    let addr = listener.local_addr()?;
    if let Some(file) = &gate.args.address_file {
        std::fs::write(file, addr.to_string()).with_context(|| format!("write {}", file.display()))?;
    }
    tracing::info!(%addr, slots = gate.fleet.total(), tls = gate.tls, "voxgate listening");
    let limits = vox_node::server::Limits::with_max_connections(
        usize::try_from(gate.args.max_connections).unwrap_or(usize::MAX),
    );
    vox_node::server::serve(listener, app, tls.as_ref(), limits, shutdown, SHUTDOWN_GRACE).await?;
    let _ = stop_tx.send(true);
    refresher.abort();
    beat.abort();
    if let Some(b) = console_beat {
        b.abort();
    }
    Ok(())
}
