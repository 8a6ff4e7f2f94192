//! voxgate's Prometheus figures.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use vox_telemetry::metrics::registered;

type Labels = Vec<(&'static str, String)>;

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub slots_free: Gauge,
    pub slots_total: Gauge,
    pub reservations: Counter,
    /// A worker refused (busy, draining, unreachable) and the next slot was tried.
    pub reservation_retries: Family<Labels, Counter>,
    /// Streams turned away, by reason.
    pub rejections: Family<Labels, Counter>,
    pub media_frames: Family<Labels, Counter>,
    /// Time to hand one carrier frame to its worker.
    pub relay_seconds: Histogram,
    pub active_streams: Gauge,
    /// Calls ended because a peer stopped reading (`carrier` or `worker`).
    pub peers_not_reading: Family<Labels, Counter>,
    /// Outbound call transitions made from carrier callbacks, by target state.
    pub outbound_transitions: Family<Labels, Counter>,
    /// Client addresses the rate limiter remembers (idle ones are forgotten every minute).
    pub limiter_addresses: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("voxgate");
        Metrics {
            slots_free: registered(&mut registry, "slots_free", "Worker slots free for a new call", Gauge::default()),
            slots_total: registered(&mut registry, "slots_total", "Worker slots known", Gauge::default()),
            reservations: registered(
                &mut registry,
                "reservations",
                "Worker slots reserved for calls",
                Counter::default(),
            ),
            reservation_retries: registered(
                &mut registry,
                "reservation_retries",
                "Reservations moved on to the next slot, by the worker's answer",
                Family::default(),
            ),
            rejections: registered(
                &mut registry,
                "rejections",
                "Media streams turned away, by reason",
                Family::default(),
            ),
            media_frames: registered(
                &mut registry,
                "media_frames",
                "Media frames relayed, by direction",
                Family::default(),
            ),
            relay_seconds: registered(
                &mut registry,
                "relay_seconds",
                "Time to hand one carrier frame to its worker",
                Histogram::new([0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1]),
            ),
            active_streams: registered(&mut registry, "active_streams", "Media streams in progress", Gauge::default()),
            peers_not_reading: registered(
                &mut registry,
                "peers_not_reading",
                "Calls ended because the carrier or the worker stopped reading for the send timeout, by peer",
                Family::default(),
            ),
            outbound_transitions: registered(
                &mut registry,
                "outbound_transitions",
                "Outbound call transitions made from carrier callbacks, by target state",
                Family::default(),
            ),
            limiter_addresses: registered(
                &mut registry,
                "rate_limiter_addresses",
                "Client addresses the per-client rate limiter remembers",
                Gauge::default(),
            ),
            registry,
        }
    }
}

impl Metrics {
    pub fn render(&self) -> String {
        vox_telemetry::metrics::render("voxgate", &self.registry)
    }
}

pub fn label(key: &'static str, value: impl Into<String>) -> Labels {
    vec![(key, value.into())]
}
