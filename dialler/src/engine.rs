//! The tick loop of the seeds, fenced.
//!
//! Every `LOOP_INTERVAL_SECONDS` the leader:
//! 1. reads the running campaigns and follows the calls it placed (see [`crate::tracker`]),
//!    feeding what happened to each campaign's pacer;
//! 2. reads the fleet's capacity from voxbridge and splits the slots not used by other
//!    traffic across the campaigns that can dial now (inside their calling window, with
//!    numbers left) by weighted fair share, capped by `max_concurrency`
//!    ([`crate::fairshare`]);
//! 3. asks each campaign's pacer how many calls to start ([`crate::pacing`]), bounded by
//!    the campaign's room, its pending numbers and the calls-per-second caps;
//! 4. leases that many calls in one `LeaseCalls` per campaign, stamped with its fencing
//!    term, and places each in its own task: calls-per-second limiters (campaign and
//!    provider account), a last look at the lease, the fenced `leased -> dialing`
//!    transition, then the provider.
//!
//! Every [`LEDGER_REFRESH`] the leader also reads each running campaign's abandon ledger
//! (`GetAbandonLedger`: abandons and live answers of the regime's rolling 24 hours or 30
//! days, from the call records) and hands the regulated period to its pacer, which holds
//! it as a hard limit (see [`crate::pacing::controller`]). Each dial rings at least the
//! campaign's ring floor (`compliance.min_ring_seconds`, 15 s under both regimes), and at
//! least `--min-ring-seconds`, whatever `--ring-timeout-seconds` says.
//!
//! A campaign's pacer starts from the campaign's recent call records ([`crate::history`])
//! when the dialler first sees the campaign, when its pacing settings change, and when
//! this dialler takes the leadership (what it learned before may miss what another leader
//! saw meanwhile), so restarts and failovers do not restart pacing cold.
//!
//! A carrier that refuses outright (5xx, 429, unreachable) gets the call back in the
//! pool (`dialing -> pending`, no attempt used) and opens a breaker that pauses dialling
//! with exponential backoff. A create request that times out may have placed the call,
//! so that attempt ends as `failed` (`provider_timeout`) and only the retry policy dials
//! the number again, later: a number is never in two live calls.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use chrono::Utc;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use vox_domain::campaign::CampaignSpec;
use vox_node::Bridge;
use vox_proto::backend::v1 as pb;

use crate::config::Args;
use crate::fairshare::{self, Claim};
use crate::history;
use crate::leadership::Leadership;
use crate::pacing::{Observation, Pacer, Snapshot};
use crate::provider::{Dial, Outcome, Provider};
use crate::status::{CampaignFigures, Status};
use crate::tracker::{Tracker, secs};

/// The live states a dialler follows.
const LIVE: [pb::CallState; 6] = [
    pb::CallState::Leased,
    pb::CallState::Dialing,
    pb::CallState::Ringing,
    pb::CallState::Answered,
    pb::CallState::Attaching,
    pb::CallState::InProgress,
];

/// How often each running campaign's abandon ledger is read from voxbridge; between
/// reads the pacer moves it on with the answers it sees itself.
pub const LEDGER_REFRESH: Duration = Duration::from_secs(30);

struct CampaignPacer {
    key: String,
    /// When the campaign's ledger was last read into this pacer.
    ledger_read_at: Option<Instant>,
    pacer: Pacer,
    last_dial_ratio: f64,
}

/// Pauses dialling after the provider refused or could not be reached.
#[derive(Debug, Default)]
struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
}

impl Breaker {
    fn is_open(&self) -> bool {
        self.open_until.is_some_and(|t| Instant::now() < t)
    }

    fn trip(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let wait = Duration::from_secs(1u64 << self.failures.min(5)).min(Duration::from_secs(30));
        self.open_until = Some(Instant::now() + wait);
        wait
    }

    fn reset(&mut self) {
        self.failures = 0;
        self.open_until = None;
    }
}

pub struct Engine {
    args: Args,
    bridge: Bridge,
    provider: Arc<dyn Provider>,
    pub leadership: Arc<Leadership>,
    pub status: Arc<Status>,
    tracker: Mutex<Tracker>,
    pacers: Mutex<HashMap<String, CampaignPacer>>,
    /// The term the pacers were built under.
    pacers_term: Mutex<Option<u64>>,
    limiters: Mutex<HashMap<String, (u32, Arc<DefaultDirectRateLimiter>)>>,
    provider_limiter: Arc<DefaultDirectRateLimiter>,
    breaker: Mutex<Breaker>,
    placing: tokio::sync::Semaphore,
    stopping: AtomicBool,
    http: reqwest::Client,
    /// When the last pacing report went out (or was tried).
    last_pacing_report: Mutex<Option<std::time::Instant>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("node_id", &self.bridge.node_id()).finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn per_second(n: u32) -> Arc<DefaultDirectRateLimiter> {
    let n = NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN);
    Arc::new(RateLimiter::direct(Quota::per_second(n).allow_burst(n)))
}

impl Engine {
    pub fn new(args: Args, bridge: Bridge, provider: Arc<dyn Provider>, status: Arc<Status>) -> anyhow::Result<Self> {
        Ok(Engine {
            provider_limiter: per_second(args.provider_max_cps),
            tracker: Mutex::new(Tracker::new(f64::from(args.min_ring_seconds))),
            args,
            bridge,
            provider,
            leadership: Arc::new(Leadership::default()),
            status,
            pacers: Mutex::new(HashMap::new()),
            pacers_term: Mutex::new(None),
            limiters: Mutex::new(HashMap::new()),
            breaker: Mutex::new(Breaker::default()),
            placing: tokio::sync::Semaphore::new(256),
            stopping: AtomicBool::new(false),
            http: reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?,
            last_pacing_report: Mutex::new(None),
        })
    }

    /// Ticks until `stop` flips; then waits for placements in flight.
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let every = Duration::from_secs_f64(self.args.loop_interval_seconds);
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = stop.changed() => break,
            }
            let view = self.leadership.view();
            let leading = self.leadership.current();
            self.status.set_leadership(leading.is_some(), leading.unwrap_or(0), &view.holder, view.error.clone());
            let Some(term) = leading else { continue };
            // A tick that hangs (a voxbridge that accepts and never answers) must not
            // hang the loop: it counts as failed and /health says so.
            match tokio::time::timeout(every * 5 + Duration::from_secs(10), self.tick(term)).await {
                Ok(Ok(figures)) => {
                    self.report_pacing(term, &figures);
                    self.status.tick_completed(figures);
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %format!("{e:#}"), "tick failed");
                    self.status.tick_failed(format!("{e:#}"));
                }
                Err(_) => {
                    self.status.tick_failed("stuck tick: voxbridge did not answer within the tick deadline".into())
                }
            }
        }
        self.stopping.store(true, Ordering::SeqCst);
        // Placements in flight finish (or give their calls back) before we go.
        let _ = tokio::time::timeout(Duration::from_secs(15), self.placing.acquire_many(256)).await;
    }

    /// Sends the campaigns' figures to voxbridge for the activity feed when
    /// `--pacing-report-seconds` have passed since the last report. Off the tick: a slow
    /// or refusing voxbridge costs a warning, never a tick. Fenced by `term`, so a report
    /// racing a leadership change is refused rather than written.
    fn report_pacing(self: &Arc<Self>, term: u64, figures: &[CampaignFigures]) {
        let every = Duration::from_secs(u64::from(self.args.pacing_report_seconds));
        if every.is_zero() || figures.is_empty() {
            return;
        }
        {
            let mut last = lock(&self.last_pacing_report);
            if last.is_some_and(|at| at.elapsed() < every) {
                return;
            }
            *last = Some(std::time::Instant::now());
        }
        let campaigns: Vec<pb::PacingFigures> = figures.iter().filter_map(to_report).collect();
        if campaigns.is_empty() {
            return;
        }
        let req = pb::ReportPacingRequest { fencing_term: term, campaigns };
        let bridge = self.bridge.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(every, bridge.leadership().report_pacing(req)).await {
                Ok(Ok(_)) => {}
                Ok(Err(s)) => tracing::warn!(code = ?s.code(), error = s.message(), "pacing report refused"),
                Err(_) => tracing::warn!("pacing report: voxbridge did not answer in time"),
            }
        });
    }

    async fn tick(self: &Arc<Self>, term: u64) -> anyhow::Result<Vec<CampaignFigures>> {
        let unreachable =
            |what: &'static str| move |s: tonic::Status| anyhow!("voxbridge unreachable ({what}): {}", s.message());
        let campaigns = self
            .bridge
            .campaigns()
            .list_campaigns(pb::ListCampaignsRequest { status: pb::CampaignStatus::Running as i32 })
            .await
            .map_err(unreachable("ListCampaigns"))?
            .into_inner()
            .campaigns;
        let now_utc = Utc::now();
        let now = secs(now_utc);

        {
            let mut built_under = lock(&self.pacers_term);
            if *built_under != Some(term) {
                lock(&self.pacers).clear();
                *built_under = Some(term);
            }
        }
        for c in &campaigns {
            if let Ok(spec) = CampaignSpec::from_proto(c.spec.as_ref()) {
                self.ensure_pacer(&c.id, &spec, now).await?;
                lock(&self.tracker).set_min_ring(&c.id, f64::from(self.args.ring_floor(&spec.compliance)));
            }
        }

        // Follow every campaign with calls, running or not.
        let mut ids: Vec<String> = campaigns.iter().map(|c| c.id.clone()).collect();
        ids.extend(lock(&self.tracker).campaigns());
        ids.sort();
        ids.dedup();
        for id in &ids {
            let mut observations = self.follow(id, now).await?;
            observations.sort_by(|a, b| a.at().total_cmp(&b.at()));
            if let Some(p) = lock(&self.pacers).get_mut(id) {
                for o in observations {
                    p.pacer.observe(o);
                }
            }
        }
        // After this tick's outcomes, so the pacer does not count again what the records
        // already hold.
        for c in &campaigns {
            self.read_ledger(&c.id).await?;
        }

        let dashboard = self
            .bridge
            .dashboard()
            .get_dashboard(pb::GetDashboardRequest {})
            .await
            .map_err(unreachable("GetDashboard"))?
            .into_inner();
        let capacity = dashboard.capacity.unwrap_or_default();

        struct Plan {
            campaign: pb::Campaign,
            spec: CampaignSpec,
            can_dial: bool,
        }
        let breaker_open = lock(&self.breaker).is_open();
        let mut plans = Vec::new();
        for c in campaigns {
            let spec = match CampaignSpec::from_proto(c.spec.as_ref()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(campaign_id = %c.id, error = %e.message, "campaign settings are invalid; not dialling it");
                    continue;
                }
            };
            let pending = c.counts.as_ref().map_or(0, |k| k.pending);
            let can_dial = spec.window.contains(now_utc) && pending > 0 && !breaker_open;
            plans.push(Plan { campaign: c, spec, can_dial });
        }

        let lives: Vec<_> = {
            let tracker = lock(&self.tracker);
            plans.iter().map(|p| tracker.live(&p.campaign.id, now)).collect()
        };
        let ours: u32 = lives.iter().map(|l| l.busy()).sum();
        let used_by_others =
            capacity.worker_slots_total.saturating_sub(capacity.worker_slots_free).saturating_sub(ours);
        let shareable = capacity.worker_slots_total.saturating_sub(used_by_others);
        let claims: Vec<Claim> = plans
            .iter()
            .zip(&lives)
            .map(|(p, l)| Claim {
                weight: p.spec.weight,
                cap: if p.can_dial { p.spec.max_concurrency } else { l.busy().min(p.spec.max_concurrency) },
            })
            .collect();
        let shares = fairshare::split(shareable, &claims);

        let mut figures = Vec::new();
        for ((plan, live), share) in plans.iter().zip(&lives).zip(shares) {
            let id = plan.campaign.id.clone();
            let free = share.saturating_sub(live.busy());
            let snapshot = Snapshot {
                now,
                slots: share,
                free_slots: free,
                held_answers: live.held_answers,
                ringing: &live.ringing,
                connected: &live.connected,
            };
            let wanted = match lock(&self.pacers).get_mut(&id) {
                Some(p) => p.pacer.calls_to_start(&snapshot),
                None => 0,
            };
            let pending = plan.campaign.counts.as_ref().map_or(0, |k| k.pending);
            let room = plan.spec.max_concurrency.saturating_sub(live.total());
            // Never lease more than the rate caps let us place before the leases expire.
            let half_lease = f64::from(self.args.call_lease_seconds) / 2.0;
            let cps = match plan.spec.pacing.max_calls_per_second {
                0 => self.args.provider_max_cps,
                n => n.min(self.args.provider_max_cps),
            };
            let rate_room = (f64::from(cps) * half_lease) as u32;
            let n = if plan.can_dial {
                wanted.min(room).min(u32::try_from(pending).unwrap_or(u32::MAX)).min(rate_room).min(1000)
            } else {
                0
            };
            if n > 0 {
                self.lease_and_place(&plan.campaign, &plan.spec, n, term, now).await?;
            }
            let ratio = if n == 0 { 0.0 } else { f64::from(n) / f64::from(free.max(1)) };
            figures.push(self.figures(&id, live.ringing.len() as u32 + n, ratio));
        }
        // Campaigns no longer running but with calls still followed.
        for id in ids {
            if !figures.iter().any(|f| f.campaign_id == id) {
                let active = lock(&self.tracker).live(&id, now).ringing.len() as u32;
                figures.push(self.figures(&id, active, 0.0));
            }
        }
        Ok(figures)
    }

    /// Reads the campaign's abandon ledger into its pacer, when [`LEDGER_REFRESH`] has
    /// passed since the last read. A voxbridge that does not know the RPC (older than
    /// this dialler) leaves the pacer on its own figures.
    async fn read_ledger(&self, campaign_id: &str) -> anyhow::Result<()> {
        let due = lock(&self.pacers)
            .get(campaign_id)
            .is_some_and(|p| p.ledger_read_at.is_none_or(|t| t.elapsed() >= LEDGER_REFRESH));
        if !due {
            return Ok(());
        }
        let req = pb::GetAbandonLedgerRequest { campaign_id: campaign_id.to_string() };
        let ledger = match self.bridge.campaigns().get_abandon_ledger(req).await {
            Ok(l) => l.into_inner(),
            Err(s) if s.code() == tonic::Code::Unimplemented => {
                if let Some(p) = lock(&self.pacers).get_mut(campaign_id) {
                    p.ledger_read_at = Some(Instant::now());
                }
                return Ok(());
            }
            Err(s) if s.code() == tonic::Code::NotFound => return Ok(()),
            Err(s) => return Err(anyhow!("voxbridge unreachable (GetAbandonLedger): {}", s.message())),
        };
        let period = ledger.regulated.unwrap_or_default();
        if let Some(p) = lock(&self.pacers).get_mut(campaign_id) {
            p.pacer.set_ledger(period.live_answers, period.abandons, ledger.limit);
            p.ledger_read_at = Some(Instant::now());
        }
        tracing::debug!(
            campaign_id,
            live_answers = period.live_answers,
            abandons = period.abandons,
            limit = ledger.limit,
            headroom = ledger.abandon_headroom,
            "abandon ledger read"
        );
        Ok(())
    }

    /// Builds the campaign's pacer from its recent call records, unless one built for
    /// the same pacing and compliance settings exists.
    async fn ensure_pacer(&self, campaign_id: &str, spec: &CampaignSpec, now: f64) -> anyhow::Result<()> {
        let key = format!("{:?} {:?}", spec.pacing, spec.compliance);
        if lock(&self.pacers).get(campaign_id).is_some_and(|p| p.key == key) {
            return Ok(());
        }
        let past = self.history(campaign_id, now).await?;
        let mut pacer = Pacer::for_campaign(&spec.pacing, f64::from(self.args.ring_timeout(&spec.compliance)));
        pacer.learn_past(&past, now);
        let (dials, releases) = pacer.stats().learned_calls();
        tracing::info!(
            campaign_id,
            outcomes = past.len(),
            dials,
            releases,
            answer_rate = pacer.stats().answer_rate(),
            aht_seconds = pacer.stats().mean_hold_seconds(),
            "pacer built from the campaign's recent calls"
        );
        lock(&self.pacers)
            .insert(campaign_id.to_string(), CampaignPacer { key, ledger_read_at: None, pacer, last_dial_ratio: 0.0 });
        Ok(())
    }

    /// The outcomes of the campaign's calls that ended within [`history::HISTORY_SECONDS`].
    async fn history(&self, campaign_id: &str, now: f64) -> anyhow::Result<Vec<Observation>> {
        let mut calls = Vec::new();
        let mut page_token = String::new();
        while calls.len() < history::HISTORY_MAX_CALLS {
            let page = self
                .bridge
                .calls()
                .list_calls(pb::ListCallsRequest {
                    campaign_id: campaign_id.to_string(),
                    states: history::ENDED.iter().map(|s| *s as i32).collect(),
                    limit: 1000,
                    page_token: page_token.clone(),
                    ..Default::default()
                })
                .await
                .map_err(|s| {
                    anyhow!("voxbridge unreachable (ListCalls, the campaign's recent calls): {}", s.message())
                })?
                .into_inner();
            calls.extend(page.calls);
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        Ok(history::past_outcomes(&calls, f64::from(self.args.call_lease_seconds), now - history::HISTORY_SECONDS))
    }

    fn figures(&self, campaign_id: &str, active_dials: u32, dial_ratio: f64) -> CampaignFigures {
        let counters = lock(&self.tracker).counters(campaign_id);
        let mut pacers = lock(&self.pacers);
        let mut f = CampaignFigures { campaign_id: campaign_id.to_string(), dial_ratio, ..CampaignFigures::default() };
        if let Some(p) = pacers.get_mut(campaign_id) {
            if dial_ratio > 0.0 || active_dials == 0 {
                p.last_dial_ratio = dial_ratio;
            }
            let stats = p.pacer.stats();
            let (dials, releases) = stats.learned_calls();
            f.mode = p.pacer.strategy().name().to_string();
            f.answer_rate = stats.answer_rate();
            f.aht_seconds = stats.mean_hold_seconds();
            f.ring_seconds = stats.mean_time_to_answer();
            f.learned_dials = dials;
            f.learned_releases = releases;
            f.abandon_credit = p.pacer.abandon_credit();
            f.abandon_target = p.pacer.abandon_target();
            f.dial_ratio = p.last_dial_ratio;
        }
        CampaignFigures {
            short_rings: counters.short_rings,
            abandon_rate: if counters.answered == 0 {
                0.0
            } else {
                counters.abandoned as f64 / counters.answered as f64
            },
            active_dials,
            calls_placed: counters.placed,
            calls_answered: counters.answered,
            calls_abandoned: counters.abandoned,
            calls_machine: counters.machine,
            ..f
        }
    }

    /// Reads back the campaign's live calls and those that just ended.
    async fn follow(self: &Arc<Self>, campaign_id: &str, now: f64) -> anyhow::Result<Vec<Observation>> {
        let mut live = Vec::new();
        let mut page_token = String::new();
        for _ in 0..20 {
            let page = self
                .bridge
                .calls()
                .list_calls(pb::ListCallsRequest {
                    campaign_id: campaign_id.to_string(),
                    states: LIVE.iter().map(|s| *s as i32).collect(),
                    limit: 1000,
                    page_token: page_token.clone(),
                    ..Default::default()
                })
                .await
                .map_err(|s| anyhow!("voxbridge unreachable (ListCalls): {}", s.message()))?
                .into_inner();
            live.extend(page.calls);
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        let mut observations = Vec::new();
        let ended = lock(&self.tracker).missing(campaign_id, &live);
        {
            let mut tracker = lock(&self.tracker);
            for c in &live {
                observations.extend(tracker.update(c, now));
            }
        }
        for id in ended {
            let call = match self.bridge.calls().get_call(pb::GetCallRequest { id: id.clone() }).await {
                Ok(c) => c.into_inner(),
                Err(s) if s.code() == tonic::Code::NotFound => {
                    lock(&self.tracker).returned(&id);
                    continue;
                }
                Err(s) => return Err(anyhow!("voxbridge unreachable (GetCall): {}", s.message())),
            };
            if call.state() == pb::CallState::Canceled && !call.provider_call_id.is_empty() {
                // An operator canceled a call the carrier may still be ringing.
                let provider = Arc::clone(&self.provider);
                let sid = call.provider_call_id.clone();
                tokio::spawn(async move {
                    if let Err(e) = provider.hang_up(&sid).await {
                        tracing::warn!(provider_call_id = %sid, error = %e, "could not hang up a canceled call");
                    }
                });
            }
            observations.extend(lock(&self.tracker).update(&call, now));
        }
        Ok(observations)
    }

    fn campaign_limiter(&self, campaign_id: &str, cps: u32) -> Option<Arc<DefaultDirectRateLimiter>> {
        if cps == 0 {
            return None;
        }
        let mut limiters = lock(&self.limiters);
        let entry = limiters.entry(campaign_id.to_string()).or_insert_with(|| (cps, per_second(cps)));
        if entry.0 != cps {
            *entry = (cps, per_second(cps));
        }
        Some(Arc::clone(&entry.1))
    }

    async fn lease_and_place(
        self: &Arc<Self>,
        campaign: &pb::Campaign,
        spec: &CampaignSpec,
        n: u32,
        term: u64,
        now: f64,
    ) -> anyhow::Result<()> {
        let leased = match self
            .bridge
            .calls()
            .lease_calls(pb::LeaseCallsRequest {
                campaign_id: campaign.id.clone(),
                max: n,
                owner: self.bridge.node_id().to_string(),
                fencing_term: term,
                lease_ttl_seconds: self.args.call_lease_seconds,
            })
            .await
        {
            Ok(r) => r.into_inner().calls,
            Err(s) if s.code() == tonic::Code::FailedPrecondition => {
                // A stale term (we lost the lease meanwhile) or a campaign paused since
                // we read it: nothing leased, nothing to do.
                tracing::warn!(campaign_id = %campaign.id, error = s.message(), "lease refused");
                return Ok(());
            }
            Err(s) => return Err(anyhow!("voxbridge unreachable (LeaseCalls): {}", s.message())),
        };
        if leased.is_empty() {
            return Ok(());
        }
        tracing::debug!(campaign_id = %campaign.id, leased = leased.len(), term, "leased calls");
        let limiter = self.campaign_limiter(&campaign.id, spec.pacing.max_calls_per_second);
        for call in leased {
            lock(&self.tracker).leased(&call.id, &campaign.id, now);
            let engine = Arc::clone(self);
            let limiter = limiter.clone();
            let from = spec.caller_id.to_string();
            let ring_timeout = self.args.ring_timeout(&spec.compliance);
            tokio::spawn(async move {
                let Ok(_permit) = engine.placing.acquire().await else { return };
                Arc::clone(&engine).place(call, from, ring_timeout, term, limiter).await;
            });
        }
        Ok(())
    }

    async fn transition(
        &self,
        call: &pb::Call,
        to: pb::CallState,
        term: u64,
        reason: &str,
        provider_call_id: &str,
    ) -> Result<(), tonic::Status> {
        let token = call.lease.as_ref().map(|l| l.token.clone()).unwrap_or_default();
        let req = pb::TransitionCallRequest {
            call_id: call.id.clone(),
            to_state: to as i32,
            fencing_term: term,
            // voxbridge checks the lease in every state the call carries it (leased, dialing,
            // ringing, …): only the dialler that leased it moves it.
            lease_token: token,
            reason: reason.to_string(),
            provider_call_id: provider_call_id.to_string(),
            ..Default::default()
        };
        self.bridge.calls().transition_call(req).await.map(|_| ())
    }

    /// Gives a leased call back to the pool (it was not placed).
    async fn give_back(&self, call: &pb::Call, term: u64, why: &str) {
        lock(&self.tracker).returned(&call.id);
        if let Err(s) = self.transition(call, pb::CallState::Pending, term, why, "").await {
            tracing::info!(call_id = %call.id, error = s.message(), "could not give the call back; its lease runs out by itself");
        }
    }

    async fn place(
        self: Arc<Self>,
        call: pb::Call,
        from: String,
        ring_timeout_seconds: u32,
        term: u64,
        limiter: Option<Arc<DefaultDirectRateLimiter>>,
    ) {
        if let Some(l) = &limiter {
            l.until_ready().await;
        }
        self.provider_limiter.until_ready().await;
        let usable = || {
            !self.stopping.load(Ordering::SeqCst)
                && self.leadership.current() == Some(term)
                && !lock(&self.breaker).is_open()
        };
        if !usable() {
            return self.give_back(&call, term, "not_placed: dialler stopping, not leading or provider paused").await;
        }
        // The fenced step: voxbridge refuses it if another dialler leads now.
        if let Err(s) = self.transition(&call, pb::CallState::Dialing, term, "dialing", "").await {
            tracing::warn!(call_id = %call.id, error = s.message(), "not dialing: voxbridge refused the move");
            lock(&self.tracker).returned(&call.id);
            return;
        }
        let mut dialing = call.clone();
        dialing.state = pb::CallState::Dialing as i32;
        if self.leadership.current() != Some(term) {
            lock(&self.tracker).returned(&call.id);
            let _ = self.transition(&dialing, pb::CallState::Pending, term, "not_placed: leadership lapsed", "").await;
            return;
        }
        let dial = Dial { call_id: call.id.clone(), to: call.to_number.clone(), from, ring_timeout_seconds };
        match self.provider.place(&dial).await {
            Ok(placed) => {
                lock(&self.breaker).reset();
                lock(&self.tracker).placed(&call.id, secs(Utc::now()));
                tracing::info!(call_id = %call.id, provider_call_id = %placed.provider_call_id, "call placed");
                if let Some(outcome) = placed.outcome {
                    self.settle(&dialing, term, outcome, &placed.provider_call_id).await;
                }
            }
            Err(e) if e.back_to_pool() => {
                let wait = lock(&self.breaker).trip();
                self.status.placement_failed(e.reason().split(':').next().unwrap_or("provider"));
                tracing::warn!(call_id = %call.id, error = %e, pause_seconds = wait.as_secs(), "provider refused; the call goes back to pending and dialling pauses");
                lock(&self.tracker).returned(&call.id);
                if let Err(s) = self.transition(&dialing, pb::CallState::Pending, term, &e.reason(), "").await {
                    tracing::warn!(call_id = %call.id, error = s.message(), "could not return the refused call to pending");
                }
            }
            Err(e) => {
                self.status.placement_failed(e.reason().split(':').next().unwrap_or("provider"));
                tracing::warn!(call_id = %call.id, error = %e, "call not placed");
                if let Err(s) = self.transition(&dialing, pb::CallState::Failed, term, &e.reason(), "").await {
                    tracing::warn!(call_id = %call.id, error = s.message(), "could not mark the call failed");
                }
            }
        }
    }

    /// Records the outcome a waiting provider (LiveKit) returned; an answer is attached
    /// to a worker through voxgate's `POST /attach`.
    async fn settle(&self, call: &pb::Call, term: u64, outcome: Outcome, provider_call_id: &str) {
        let (to, reason) = match &outcome {
            Outcome::Answered => (pb::CallState::Answered, "answered".to_string()),
            Outcome::Busy => (pb::CallState::Busy, "busy".to_string()),
            Outcome::NoAnswer => (pb::CallState::NoAnswer, "no_answer".to_string()),
            Outcome::Failed(why) => (pb::CallState::Failed, format!("carrier_failed: {why}")),
        };
        if let Err(s) = self.transition(call, to, term, &reason, provider_call_id).await {
            tracing::warn!(call_id = %call.id, error = s.message(), "could not record the outcome");
            return;
        }
        if outcome == Outcome::Answered
            && let Err(e) = self.attach(&call.id).await
        {
            tracing::warn!(call_id = %call.id, error = %format!("{e:#}"), "attach failed");
        }
    }

    async fn attach(&self, call_id: &str) -> anyhow::Result<()> {
        let url = format!("{}/attach", self.args.gateway_url.trim_end_matches('/'));
        let resp = self
            .http
            .post(&url)
            .bearer_auth(&self.args.node_secret)
            .json(&serde_json::json!({ "call_id": call_id }))
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        if !resp.status().is_success() {
            let status = resp.status();
            anyhow::bail!("{url} answered {status}: {}", resp.text().await.unwrap_or_default());
        }
        Ok(())
    }
}

/// One campaign's figures as voxbridge's feed carries them; None for a campaign without
/// a pacer yet. A figure with nothing to rest on yet (not finite) is sent as 0.
fn to_report(f: &CampaignFigures) -> Option<pb::PacingFigures> {
    if f.mode.is_empty() {
        return None;
    }
    let known = |x: f64| if x.is_finite() { x.max(0.0) } else { 0.0 };
    Some(pb::PacingFigures {
        campaign_id: f.campaign_id.clone(),
        mode: f.mode.clone(),
        dial_ratio: known(f.dial_ratio),
        answer_rate: known(f.answer_rate).min(1.0),
        aht_seconds: known(f.aht_seconds),
        ring_seconds: known(f.ring_seconds),
        abandon_rate: known(f.abandon_rate).min(1.0),
        abandon_target: known(f.abandon_target).min(1.0),
        abandon_credit: known(f.abandon_credit),
        active_dials: f.active_dials,
        calls_placed: f.calls_placed,
        calls_answered: f.calls_answered,
        calls_abandoned: f.calls_abandoned,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_breaker_backs_off_and_resets() {
        let mut b = Breaker::default();
        assert!(!b.is_open());
        assert_eq!(b.trip(), Duration::from_secs(2));
        assert!(b.is_open());
        assert_eq!(b.trip(), Duration::from_secs(4));
        for _ in 0..10 {
            b.trip();
        }
        assert_eq!(b.trip(), Duration::from_secs(30));
        b.reset();
        assert!(!b.is_open());
    }
}
