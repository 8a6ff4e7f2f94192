//! Prometheus figures: heartbeats, leases, transitions, the reaper, and the
//! dashboard gauges (refreshed when scraped).

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use vox_telemetry::metrics::registered;

pub type Labels = Vec<(&'static str, String)>;

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub heartbeats: Family<Labels, Counter>,
    pub heartbeat_rejections: Family<Labels, Counter>,
    pub calls_leased: Counter,
    pub lease_rejections: Family<Labels, Counter>,
    pub transitions: Family<Labels, Counter>,
    pub transition_rejections: Family<Labels, Counter>,
    pub reaped: Family<Labels, Counter>,
    pub nodes_online: Family<Labels, Gauge>,
    pub nodes_registered: Family<Labels, Gauge>,
    pub worker_slots_free: Gauge,
    pub worker_slots_total: Gauge,
    pub calls_live: Gauge,
    pub calls_processing: Gauge,
    pub calls_pending_due: Gauge,
    pub leader_term: Gauge<u64, AtomicU64>,
    pub requests_shed: Family<Labels, Counter>,
    /// Cluster events waiting for Redis, and dropped from its full queue.
    pub events_queued: Gauge,
    pub events_dropped: Counter,
    pub sign_ins_throttled: Family<Labels, Counter>,
    /// Each campaign's abandon ledger by period (`24h`, `30d`), set whenever it is read
    /// (the dialler reads every running campaign's each tick; the console on its page).
    pub campaign_abandon_rate: Family<Labels, Gauge<f64, AtomicU64>>,
    pub campaign_live_answers: Family<Labels, Gauge>,
    pub campaign_abandons: Family<Labels, Gauge>,
    /// The rate each campaign is held to.
    pub campaign_abandon_limit: Family<Labels, Gauge<f64, AtomicU64>>,
    /// Webhook delivery attempts by outcome (delivered, retrying, dead_lettered).
    pub webhook_deliveries: Family<Labels, Counter>,
    /// Recording jobs settled, by outcome (analyzed, failed).
    pub recordings_processed: Family<Labels, Counter>,
    /// The work queue's jobs by queue and state (ready, delayed, in_flight, dead).
    pub queue_jobs: Family<Labels, Gauge>,
    /// Jobs dropped at their expiry, by queue.
    pub queue_expired: Family<Labels, Gauge>,
    /// How long the oldest ready job of each queue has waited: consumers' lag.
    pub queue_oldest_ready_age: Family<Labels, Gauge<f64, AtomicU64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("voxbridge");
        Metrics {
            heartbeats: registered(&mut registry, "heartbeats", "Heartbeats accepted, by node kind", Family::default()),
            heartbeat_rejections: registered(
                &mut registry,
                "heartbeat_rejections",
                "Heartbeats refused, by reason",
                Family::default(),
            ),
            calls_leased: registered(&mut registry, "calls_leased", "Calls leased to the dialler", Counter::default()),
            lease_rejections: registered(
                &mut registry,
                "lease_rejections",
                "Lease requests refused, by gRPC code",
                Family::default(),
            ),
            transitions: registered(
                &mut registry,
                "call_transitions",
                "Call transitions applied, by target state",
                Family::default(),
            ),
            transition_rejections: registered(
                &mut registry,
                "call_transition_rejections",
                "Call transitions refused, by gRPC code",
                Family::default(),
            ),
            reaped: registered(
                &mut registry,
                "calls_reaped",
                "Calls moved on by the stale-call reaper, by the state they were stuck in",
                Family::default(),
            ),
            events_queued: registered(
                &mut registry,
                "events_queued",
                "Cluster events waiting to be published to the other instances (Redis)",
                Gauge::default(),
            ),
            events_dropped: registered(
                &mut registry,
                "events_dropped",
                "Cluster events dropped because Redis was too slow or away and the queue was full",
                Counter::default(),
            ),
            requests_shed: registered(
                &mut registry,
                "requests_shed",
                "Requests refused for capacity, by class (node, user, anonymous) and reason (busy, deadline)",
                Family::default(),
            ),
            sign_ins_throttled: registered(
                &mut registry,
                "sign_ins_throttled",
                "Sign-ins refused before their password was checked, by reason (address, hashing)",
                Family::default(),
            ),
            nodes_online: registered(
                &mut registry,
                "nodes_online",
                "Nodes with a fresh heartbeat, by kind",
                Family::default(),
            ),
            nodes_registered: registered(
                &mut registry,
                "nodes_registered",
                "Registered nodes that are not disabled, by kind",
                Family::default(),
            ),
            worker_slots_free: registered(
                &mut registry,
                "worker_slots_free",
                "Idle worker slots on online, active fleet nodes",
                Gauge::default(),
            ),
            worker_slots_total: registered(
                &mut registry,
                "worker_slots_total",
                "Worker slots on online fleet nodes",
                Gauge::default(),
            ),
            calls_live: registered(&mut registry, "calls_live", "Calls with a person on the line", Gauge::default()),
            calls_processing: registered(
                &mut registry,
                "calls_processing",
                "Calls leased, dialing, ringing, answered or attaching",
                Gauge::default(),
            ),
            calls_pending_due: registered(
                &mut registry,
                "calls_pending_due",
                "Pending calls due now in running campaigns",
                Gauge::default(),
            ),
            leader_term: registered(
                &mut registry,
                "leader_term",
                "The dialler leadership fencing term",
                Gauge::<u64, AtomicU64>::default(),
            ),
            campaign_abandon_rate: registered(
                &mut registry,
                "campaign_abandon_rate",
                "Abandons over live answers, by campaign and rolling period (24h, 30d), from the call records",
                Family::default(),
            ),
            campaign_live_answers: registered(
                &mut registry,
                "campaign_live_answers",
                "Calls a person answered (machines excluded), by campaign and rolling period",
                Family::default(),
            ),
            campaign_abandons: registered(
                &mut registry,
                "campaign_abandons",
                "Live answers abandoned for want of a free worker, by campaign and rolling period",
                Family::default(),
            ),
            campaign_abandon_limit: registered(
                &mut registry,
                "campaign_abandon_limit",
                "The abandon rate each campaign is held to: its target, at most the regime's 3%",
                Family::default(),
            ),
            webhook_deliveries: registered(
                &mut registry,
                "webhook_deliveries",
                "Webhook delivery attempts, by outcome (delivered, retrying, dead_lettered)",
                Family::default(),
            ),
            recordings_processed: registered(
                &mut registry,
                "recordings_processed",
                "Recordings read back from storage and checked, by outcome (analyzed, failed: retried, then a dead letter)",
                Family::default(),
            ),
            queue_jobs: registered(
                &mut registry,
                "queue_jobs",
                "Work-queue jobs by queue and state (ready, delayed, in_flight, dead)",
                Family::default(),
            ),
            queue_expired: registered(
                &mut registry,
                "queue_expired_jobs",
                "Work-queue jobs dropped at their expiry without delivery, by queue",
                Family::default(),
            ),
            queue_oldest_ready_age: registered(
                &mut registry,
                "queue_oldest_ready_age_seconds",
                "Age of the oldest ready job of each work queue (0 when none is ready)",
                Family::default(),
            ),
            registry,
        }
    }
}

impl Metrics {
    pub fn render(&self) -> String {
        vox_telemetry::metrics::render("voxbridge", &self.registry)
    }
}

pub fn label(key: &'static str, value: impl Into<String>) -> Labels {
    vec![(key, value.into())]
}
