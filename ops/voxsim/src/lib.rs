//! voxsim, the carrier simulator: it plays the carrier side so the whole platform runs
//! and is tested without a phone line. One HTTP port serves the Twilio REST subset a
//! dialler uses (create, read, hang up; [`twilio`]), LiveKit's SIP dial-out over Twirp
//! ([`livekit`]) and a test API (`/sim/…`; [`inspect`]). Each call's outcome comes from
//! a seeded model ([`model`]); its [`lifecycle`] sends signed status callbacks
//! ([`callbacks`]) and, for an answer, fetches the voice webhook, follows the TwiML
//! ([`twiml`]) and streams audio over Twilio Media Streams ([`media`]) until the callee
//! hangs up.

pub mod callbacks;
pub mod calls;
pub mod config;
mod inspect;
mod lifecycle;
mod livekit;
pub mod media;
pub mod model;
pub mod twilio;
pub mod twiml;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};

use crate::calls::{Call, Hangup};
use crate::config::Args;

/// A fault injected into the next create requests.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fault {
    /// Answer with this status instead of creating the call.
    pub status: Option<StatusCode>,
    /// Hang this long first.
    pub delay_ms: u64,
}

#[derive(Debug, Default)]
struct Registry {
    order: Vec<Arc<Call>>,
    by_sid: HashMap<String, Arc<Call>>,
}

/// What every handler and call lifecycle shares.
#[derive(Debug)]
pub struct Sim {
    pub args: Args,
    pub http: reqwest::Client,
    calls: Mutex<Registry>,
    counter: AtomicU64,
    faults: Mutex<(Fault, u64)>,
    /// Status callbacks queued and not yet delivered or given up.
    pub pending_callbacks: Arc<AtomicUsize>,
}

impl Sim {
    pub fn new(args: Args) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).build().context("http client")?;
        Ok(Sim {
            args,
            http,
            calls: Mutex::new(Registry::default()),
            counter: AtomicU64::new(0),
            faults: Mutex::new((Fault::default(), 0)),
            pending_callbacks: Arc::new(AtomicUsize::new(0)),
        })
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next call's index (0, 1, 2, … across providers): the model's RNG stream.
    pub fn next_index(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::SeqCst)
    }

    pub fn insert(&self, call: Arc<Call>) {
        let mut r = self.registry();
        r.by_sid.insert(call.sid.clone(), Arc::clone(&call));
        r.order.push(call);
    }

    pub fn get(&self, sid: &str) -> Option<Arc<Call>> {
        self.registry().by_sid.get(sid).cloned()
    }

    pub fn all(&self) -> Vec<Arc<Call>> {
        self.registry().order.clone()
    }

    pub fn set_faults(&self, fault: Fault, count: u64) {
        *self.faults.lock().unwrap_or_else(|p| p.into_inner()) =
            if count == 0 { (Fault::default(), 0) } else { (fault, count) };
    }

    pub fn faults(&self) -> (Fault, u64) {
        *self.faults.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes one armed fault for a create request, if any.
    pub fn take_fault(&self) -> Option<Fault> {
        let mut f = self.faults.lock().unwrap_or_else(|p| p.into_inner());
        if f.1 == 0 {
            return None;
        }
        f.1 -= 1;
        Some(f.0)
    }

    /// Hangs up every live call (shutdown).
    pub fn hang_up_all(&self) -> usize {
        self.all().iter().filter(|c| c.request_hangup(Hangup::Any)).count()
    }

    /// True when every call has ended and every status callback is out.
    pub fn settled(&self) -> bool {
        self.all().iter().all(|c| c.status().is_final()) && self.pending_callbacks.load(Ordering::SeqCst) == 0
    }
}

async fn health() -> &'static str {
    "ok"
}

/// Every route voxsim serves.
pub fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/2010-04-01/Accounts/{account}/Calls.json", post(twilio::create))
        .route("/2010-04-01/Accounts/{account}/Calls/{file}", get(twilio::fetch).post(twilio::update))
        .route("/twirp/livekit.SIP/CreateSIPParticipant", post(livekit::create_sip_participant))
        .route("/twirp/livekit.RoomService/RemoveParticipant", post(livekit::remove_participant))
        .route("/twirp/livekit.RoomService/DeleteRoom", post(livekit::delete_room))
        .route("/sim/calls", get(inspect::calls))
        .route("/sim/stats", get(inspect::stats))
        .route("/sim/faults", post(inspect::set_faults).get(inspect::get_faults))
        .with_state(sim)
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

/// Serves voxsim on `listener` until `shutdown` resolves; then hangs up every live call
/// (streams get `stop`, final callbacks go out) and waits up to 5 s for that to finish.
pub async fn run(
    args: Args,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    args.validate().map_err(anyhow::Error::msg)?;
    let sim = Arc::new(Sim::new(args)?);
    let addr = listener.local_addr().context("local address")?;
    if let Some(file) = &sim.args.address_file {
        std::fs::write(file, addr.to_string()).with_context(|| format!("write {}", file.display()))?;
    }
    let p = &sim.args.model;
    tracing::info!(
        %addr,
        seed = p.seed,
        answer_prob = p.answer_prob,
        machine_prob = p.machine_prob,
        fail_prob = p.fail_prob,
        time_scale = p.time_scale,
        livekit = sim.args.livekit_api_key.is_some(),
        "voxsim listening"
    );
    let on_shutdown = {
        let sim = Arc::clone(&sim);
        async move {
            shutdown.await;
            let n = sim.hang_up_all();
            tracing::info!(live_calls = n, "shutting down: hanging up live calls");
        }
    };
    axum::serve(listener, router(Arc::clone(&sim))).with_graceful_shutdown(on_shutdown).await.context("serve")?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !sim.settled() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if !sim.settled() {
        tracing::warn!("calls or status callbacks were still pending at shutdown");
    }
    Ok(())
}
