//! What the dialler reports about itself: health (with the reason when unhealthy), the
//! runbook's pacing figures per campaign, as Prometheus metrics, JSON and the
//! `vox.dialler.v1.DiallerService` gRPC status.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;
use vox_proto::dialler::v1 as dpb;
use vox_telemetry::metrics::registered;

/// One campaign's live pacing figures.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct CampaignFigures {
    pub campaign_id: String,
    pub mode: String,
    /// Calls placed per free slot in the last tick.
    pub dial_ratio: f64,
    /// Human answers / ended dials.
    pub answer_rate: f64,
    /// Mean seconds a connected call holds its slot.
    pub aht_seconds: f64,
    /// Mean seconds from the dial to a person answering.
    pub ring_seconds: f64,
    /// Finished dials and released slots the estimates rest on (decayed counts).
    pub learned_dials: f64,
    pub learned_releases: f64,
    /// Abandons the campaign can still afford within its target, from what the pacer
    /// saw (including the records it read back).
    pub abandon_credit: f64,
    /// The campaign's abandon target (its pacing settings), for alerts to compare with.
    pub abandon_target: f64,
    /// No-answers the carrier ended before the ring-time floor, since this dialler
    /// started.
    pub short_rings: u64,
    /// Abandons / human answers, since this dialler started.
    pub abandon_rate: f64,
    pub active_dials: u32,
    pub calls_placed: u64,
    pub calls_answered: u64,
    pub calls_abandoned: u64,
    pub calls_machine: u64,
}

#[derive(Debug, Clone, Default)]
struct Inner {
    leader: bool,
    term: u64,
    holder: String,
    last_tick: Option<(Instant, DateTime<Utc>)>,
    /// Why the last tick did not complete, if it did not.
    tick_error: Option<String>,
    leadership_error: Option<String>,
    campaigns: BTreeMap<String, CampaignFigures>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CampaignLabel {
    campaign_id: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// The dialler's status, shared by the tick loop and the health server.
#[derive(Debug)]
pub struct Status {
    node_id: String,
    stale_after: Duration,
    inner: Mutex<Inner>,
    registry: Registry,
    answer_rate: Family<CampaignLabel, FloatGauge>,
    aht: Family<CampaignLabel, FloatGauge>,
    ring_seconds: Family<CampaignLabel, FloatGauge>,
    learned_dials: Family<CampaignLabel, FloatGauge>,
    learned_releases: Family<CampaignLabel, FloatGauge>,
    abandon_credit: Family<CampaignLabel, FloatGauge>,
    abandon_target: Family<CampaignLabel, FloatGauge>,
    short_rings: Family<CampaignLabel, Counter>,
    abandon_rate: Family<CampaignLabel, FloatGauge>,
    dial_ratio: Family<CampaignLabel, FloatGauge>,
    active_dials: Family<CampaignLabel, Gauge>,
    placed: Family<CampaignLabel, Counter>,
    answered: Family<CampaignLabel, Counter>,
    abandoned: Family<CampaignLabel, Counter>,
    machine: Family<CampaignLabel, Counter>,
    leader_term: Gauge,
    is_leader: Gauge,
    ticks: Counter,
    tick_failures: Counter,
    placement_failures: Family<ReasonLabel, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

/// The answer of `/health`.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    pub healthy: bool,
    pub reason: String,
    pub leader: bool,
    pub term: u64,
    pub last_tick_age_seconds: Option<f64>,
}

impl Status {
    pub fn new(node_id: &str, stale_after: Duration) -> Self {
        let mut registry = Registry::with_prefix("voxdialler");
        Status {
            node_id: node_id.to_string(),
            stale_after,
            inner: Mutex::new(Inner::default()),
            answer_rate: registered(
                &mut registry,
                "answer_rate",
                "Human answers per ended dial, per campaign (live estimate)",
                Default::default(),
            ),
            aht: registered(
                &mut registry,
                "aht_seconds",
                "Average handle time: seconds a connected call holds its slot",
                Default::default(),
            ),
            ring_seconds: registered(
                &mut registry,
                "ring_seconds",
                "Mean seconds from the dial to a person answering (live estimate)",
                Default::default(),
            ),
            learned_dials: registered(
                &mut registry,
                "learned_dials",
                "Finished dials the answer estimates rest on (recent ones weigh more)",
                Default::default(),
            ),
            learned_releases: registered(
                &mut registry,
                "learned_releases",
                "Finished connected calls the hold-time estimate rests on (recent ones weigh more)",
                Default::default(),
            ),
            abandon_credit: registered(
                &mut registry,
                "abandon_credit",
                "Abandons the campaign can still afford within its target (target x answers - abandons)",
                Default::default(),
            ),
            abandon_target: registered(
                &mut registry,
                "abandon_target",
                "The campaign's abandon target: abandoned / human answers it may not exceed",
                Default::default(),
            ),
            short_rings: registered(
                &mut registry,
                "short_rings",
                "No-answers the carrier ended before the ring-time floor (--min-ring-seconds)",
                Default::default(),
            ),
            abandon_rate: registered(
                &mut registry,
                "abandon_rate",
                "Abandoned / human answers since this dialler started",
                Default::default(),
            ),
            dial_ratio: registered(
                &mut registry,
                "dial_ratio",
                "Calls placed per free slot in the last tick",
                Default::default(),
            ),
            active_dials: registered(
                &mut registry,
                "active_dials",
                "Dials leased, dialing or ringing now",
                Default::default(),
            ),
            placed: registered(&mut registry, "calls_placed", "Calls the provider accepted", Default::default()),
            answered: registered(&mut registry, "calls_answered", "Calls a person answered", Default::default()),
            abandoned: registered(
                &mut registry,
                "calls_abandoned",
                "Answered calls that found no free worker in time",
                Default::default(),
            ),
            machine: registered(
                &mut registry,
                "calls_machine",
                "Calls an answering machine picked up",
                Default::default(),
            ),
            leader_term: registered(
                &mut registry,
                "leader_term",
                "The fencing term this dialler leads with (0: standby)",
                Default::default(),
            ),
            is_leader: registered(
                &mut registry,
                "leader",
                "1 while this dialler holds the leadership lease",
                Default::default(),
            ),
            ticks: registered(&mut registry, "ticks", "Completed ticks", Default::default()),
            tick_failures: registered(
                &mut registry,
                "tick_failures",
                "Ticks that could not complete (voxbridge unreachable, ...)",
                Default::default(),
            ),
            placement_failures: registered(
                &mut registry,
                "placement_failures",
                "Calls the provider did not place, by reason",
                Default::default(),
            ),
            registry,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn set_leadership(&self, leader: bool, term: u64, holder: &str, error: Option<String>) {
        let mut i = self.lock();
        i.leader = leader;
        i.term = if leader { term } else { 0 };
        i.holder = holder.to_string();
        i.leadership_error = error;
        self.leader_term.set(i.term as i64);
        self.is_leader.set(i64::from(leader));
    }

    pub fn tick_completed(&self, campaigns: Vec<CampaignFigures>) {
        let mut i = self.lock();
        i.last_tick = Some((Instant::now(), Utc::now()));
        i.tick_error = None;
        self.ticks.inc();
        for f in &campaigns {
            let l = CampaignLabel { campaign_id: f.campaign_id.clone() };
            self.answer_rate.get_or_create(&l).set(f.answer_rate);
            self.aht.get_or_create(&l).set(f.aht_seconds);
            self.ring_seconds.get_or_create(&l).set(f.ring_seconds);
            self.learned_dials.get_or_create(&l).set(f.learned_dials);
            self.learned_releases.get_or_create(&l).set(f.learned_releases);
            self.abandon_credit.get_or_create(&l).set(f.abandon_credit);
            self.abandon_target.get_or_create(&l).set(f.abandon_target);
            self.abandon_rate.get_or_create(&l).set(f.abandon_rate);
            self.dial_ratio.get_or_create(&l).set(f.dial_ratio);
            self.active_dials.get_or_create(&l).set(i64::from(f.active_dials));
            for (family, total) in [
                (&self.placed, f.calls_placed),
                (&self.answered, f.calls_answered),
                (&self.abandoned, f.calls_abandoned),
                (&self.machine, f.calls_machine),
                (&self.short_rings, f.short_rings),
            ] {
                let c = family.get_or_create(&l);
                let now = c.get();
                if total > now {
                    c.inc_by(total - now);
                }
            }
        }
        i.campaigns = campaigns.into_iter().map(|f| (f.campaign_id.clone(), f)).collect();
    }

    pub fn tick_failed(&self, why: String) {
        self.tick_failures.inc();
        self.lock().tick_error = Some(why);
    }

    pub fn placement_failed(&self, reason: &str) {
        self.placement_failures.get_or_create(&ReasonLabel { reason: reason.to_string() }).inc();
    }

    /// Healthy while leading, reaching voxbridge and ticking; otherwise why not.
    pub fn health(&self) -> Health {
        let i = self.lock();
        let age = i.last_tick.map(|(at, _)| at.elapsed().as_secs_f64());
        let reason = if let Some(e) = &i.tick_error {
            Some(e.clone())
        } else if let Some(e) = &i.leadership_error {
            Some(e.clone())
        } else if !i.leader {
            Some(if i.holder.is_empty() {
                "no leadership: nobody holds the lease yet".to_string()
            } else {
                format!("no leadership: standing by while {} leads", i.holder)
            })
        } else {
            match age {
                None => Some("stuck tick: no tick has completed yet".to_string()),
                Some(a) if a > self.stale_after.as_secs_f64() => {
                    Some(format!("stuck tick: the last tick completed {a:.0} s ago"))
                }
                _ => None,
            }
        };
        Health {
            healthy: reason.is_none(),
            reason: reason.unwrap_or_else(|| "ok".into()),
            leader: i.leader,
            term: i.term,
            last_tick_age_seconds: age,
        }
    }

    pub fn to_proto(&self) -> dpb::DiallerStatus {
        let health = self.health();
        let i = self.lock();
        dpb::DiallerStatus {
            node_id: self.node_id.clone(),
            leader: i.leader,
            term: i.term,
            last_tick_at: i.last_tick.map(|(_, at)| prost_types::Timestamp {
                seconds: at.timestamp(),
                nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
            }),
            healthy: health.healthy,
            unhealthy_reason: if health.healthy { String::new() } else { health.reason },
            campaigns: i
                .campaigns
                .values()
                .map(|f| dpb::CampaignPacing {
                    campaign_id: f.campaign_id.clone(),
                    mode: f.mode.clone(),
                    dial_ratio: f.dial_ratio,
                    answer_rate: f.answer_rate,
                    aht_seconds: f.aht_seconds,
                    abandon_rate: f.abandon_rate,
                    active_dials: f.active_dials,
                    calls_placed: f.calls_placed,
                    calls_answered: f.calls_answered,
                    calls_abandoned: f.calls_abandoned,
                })
                .collect(),
        }
    }

    pub fn encode_metrics(&self) -> String {
        vox_telemetry::metrics::render("voxdialler", &self.registry)
    }
}
