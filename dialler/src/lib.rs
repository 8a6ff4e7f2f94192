//! voxdialler, the Vox outbound dialler.
//!
//! * [`engine`]: the seeds' tick loop (campaigns → pacing → fair share → one batch lease
//!   per campaign → place through a provider → follow to the end), fenced by
//! * [`leadership`]: exactly one active dialler, through voxbridge's leadership lease;
//! * [`pacing`]: how many calls each campaign starts per tick (progressive, fixed ratio,
//!   predictive), and [`bench`], the benchmark that runs that same code against a
//!   discrete-event carrier model on a virtual clock (`voxctl bench pacing`);
//! * [`history`]: what a pacer learns from the campaign's call records when it starts
//!   (after a restart or failover);
//! * [`fairshare`], [`tracker`], [`provider`] (Twilio-compatible REST, voxsim, LiveKit),
//!   [`status`] and [`health`] (the health server on 127.0.0.1:8090).

pub mod bench;
pub mod config;
pub mod engine;
pub mod fairshare;
pub mod health;
pub mod history;
pub mod leadership;
pub mod pacing;
pub mod provider;
pub mod status;
pub mod tracker;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use config::{Args, ProviderKind, SIM_ACCOUNT_SID};
use provider::Provider;
use provider::livekit::LiveKit;
use provider::twilio::{Twilio, TwilioSettings};

/// The provider `args` ask for.
pub fn provider(args: &Args) -> anyhow::Result<Arc<dyn Provider>> {
    let timeout = Duration::from_millis(args.provider_timeout_ms);
    let twilio = |name: &'static str, base: &str, sid: &str| -> anyhow::Result<Arc<dyn Provider>> {
        Ok(Arc::new(Twilio::new(TwilioSettings {
            name,
            api_base: args.provider_url.clone().unwrap_or_else(|| base.to_string()),
            account_sid: args.twilio_account_sid.clone().unwrap_or_else(|| sid.to_string()),
            auth_token: args.twilio_auth_token.clone().unwrap_or_default(),
            gateway_url: args.gateway_url.clone(),
            machine_detection: !args.no_machine_detection,
            timeout,
        })?))
    };
    match args.provider {
        ProviderKind::Sim => twilio("sim", "http://127.0.0.1:8070", SIM_ACCOUNT_SID),
        ProviderKind::Twilio => twilio("twilio", "https://api.twilio.com", ""),
        ProviderKind::Livekit => Ok(Arc::new(LiveKit::new(
            args.livekit_url.as_deref().unwrap_or_default(),
            args.livekit_api_key.as_deref().unwrap_or_default(),
            args.livekit_api_secret.as_deref().unwrap_or_default(),
            args.livekit_sip_trunk_id.as_deref().unwrap_or_default(),
            // A campaign's ring floor may ask for longer than the fleet's timeout.
            Duration::from_secs(u64::from(
                args.effective_ring_timeout().max(vox_domain::campaign::MAX_MIN_RING_SECONDS),
            )),
        )?)),
    }
}

/// Runs the dialler until `shutdown` resolves: heartbeats its node, competes for the
/// leadership lease, ticks while leading, serves health on `listener`.
pub async fn run(
    args: Args,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    args.validate()?;
    if let Some(ca) = &args.tls_ca {
        vox_node::tls::trust_ca_file(ca)?;
    }
    let secret = vox_node::NodeSecret::parse("--node-secret (VOX_NODE_SECRET)", &args.node_secret)
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let bridge = vox_node::Bridge::new(&args.bridge_url, secret).map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let provider = provider(&args)?;
    let status = Arc::new(status::Status::new(bridge.node_id(), Duration::from_secs(args.health_stale_seconds)));
    let engine =
        Arc::new(engine::Engine::new(args.clone(), bridge.clone(), Arc::clone(&provider), Arc::clone(&status))?);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);

    let ttl = Duration::from_secs(args.leadership_ttl_seconds);
    let leader = tokio::spawn(leadership::run(bridge.clone(), ttl, Arc::clone(&engine.leadership), stop_rx.clone()));
    let beat = tokio::spawn(vox_node::heartbeat::run(
        bridge.clone(),
        vox_node::new_boot_id(),
        vox_telemetry::build::FULL_VERSION,
        Arc::new(vox_node::heartbeat::NoSlots),
        stop_rx.clone(),
    ));
    let ticks = tokio::spawn(Arc::clone(&engine).run(stop_rx.clone()));

    let addr = listener.local_addr()?;
    if let Some(file) = &args.address_file {
        std::fs::write(file, addr.to_string()).with_context(|| format!("write {}", file.display()))?;
    }
    tracing::info!(%addr, node_id = bridge.node_id(), provider = provider.name(), "voxdialler health server listening");
    let app = health::router(status, bridge.channel()).await?;
    // Probes, Prometheus and the console's status polls through voxgate: a few dozen
    // connections at most.
    let limits = vox_node::server::Limits::with_max_connections(256);
    let served =
        vox_node::server::serve(listener, app, None, limits, shutdown, std::time::Duration::from_secs(5)).await;
    tracing::info!("stopping: no new dials; placements in flight finish; the lease is released");
    let _ = stop_tx.send(true);
    let _ = ticks.await;
    let _ = leader.await;
    beat.abort();
    served
}
