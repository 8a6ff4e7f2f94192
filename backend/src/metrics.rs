//! Prometheus figures: heartbeats, leases, transitions, the reaper, every RPC, and the
//! dashboard gauges (refreshed when scraped).

use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use prost::Message;
use prost_types::FileDescriptorSet;
use vox_telemetry::metrics::registered;

type Labels = Vec<(&'static str, String)>;

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
    pub rpc_requests: Family<Labels, Counter>,
    pub rpc_seconds: Family<Labels, Histogram>,
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
    /// The paths RPC metrics may name.
    pub known: KnownMethods,
}

fn latency() -> Histogram {
    Histogram::new([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5])
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
            rpc_requests: registered(
                &mut registry,
                "rpc_requests",
                "RPCs served, by method and gRPC status code",
                Family::default(),
            ),
            rpc_seconds: registered(
                &mut registry,
                "rpc_seconds",
                "Time to the response headers of each RPC, by method",
                Family::<Labels, Histogram>::new_with_constructor(latency),
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
            known: KnownMethods::voxbridge(),
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

/// The request paths metrics may name: every method of the services voxbridge serves,
/// plus its HTTP routes. Anything else is counted as `unknown`, so a stranger sending
/// made-up paths cannot create new series (each one costs memory for the process's life).
#[derive(Debug, Clone)]
pub struct KnownMethods(HashSet<String>);

impl KnownMethods {
    /// The methods of `services` as described in `descriptor_sets` (encoded
    /// `FileDescriptorSet`s), plus `routes`.
    pub fn new(descriptor_sets: &[&[u8]], services: &[&str], routes: &[&str]) -> Self {
        let mut known: HashSet<String> = routes.iter().map(|r| r.to_string()).collect();
        for set in descriptor_sets {
            let files = match FileDescriptorSet::decode(*set) {
                Ok(s) => s.file,
                Err(e) => {
                    tracing::error!(error = %e, "metrics: a built-in descriptor set does not decode");
                    continue;
                }
            };
            for file in files {
                for service in &file.service {
                    let name = format!("{}.{}", file.package(), service.name());
                    if !services.contains(&name.as_str()) {
                        continue;
                    }
                    for method in &service.method {
                        known.insert(format!("/{name}/{}", method.name()));
                    }
                }
            }
        }
        KnownMethods(known)
    }

    /// What voxbridge serves: the control plane's services, health and reflection, and
    /// `GET /health` and `GET /metrics`.
    pub fn voxbridge() -> Self {
        let mut services: Vec<&str> = vox_proto::BACKEND_SERVICES.to_vec();
        services.extend([
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
        ]);
        let sets = [
            vox_proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ];
        KnownMethods::new(&sets, &services, &["/health", "/metrics"])
    }

    /// `path` when it is known, otherwise `unknown`.
    pub fn label(&self, path: &str) -> String {
        if self.0.contains(path) { path.to_string() } else { UNKNOWN.to_string() }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The method label of every path voxbridge does not serve.
pub const UNKNOWN: &str = "unknown";

/// Counts each gRPC call by method and status code and times it to its response headers.
/// A status sent in trailers after a successful start counts as OK. The method label is
/// one of [`KnownMethods`] or `unknown`.
pub async fn track_rpc(State(metrics): State<std::sync::Arc<Metrics>>, req: Request, next: Next) -> Response {
    let is_grpc = req.headers().get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let method = if is_grpc { metrics.known.label(req.uri().path()) } else { String::new() };
    let start = Instant::now();
    let response = next.run(req).await;
    if is_grpc {
        let code = response
            .headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<i32>().ok())
            .unwrap_or(0);
        let code = format!("{:?}", tonic::Code::from_i32(code));
        metrics.rpc_requests.get_or_create(&vec![("method", method.clone()), ("code", code)]).inc();
        metrics.rpc_seconds.get_or_create(&label("method", method)).observe(start.elapsed().as_secs_f64());
    }
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests stop on failure")]
    use super::*;

    #[test]
    fn only_served_methods_are_named() {
        let known = KnownMethods::voxbridge();
        assert!(known.len() > 40, "{} methods", known.len());
        for path in [
            "/vox.backend.v1.CallService/TransitionCall",
            "/vox.backend.v1.NodeService/Heartbeat",
            "/vox.backend.v1.ClusterService/GetTokenKey",
            "/grpc.health.v1.Health/Check",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            "/health",
            "/metrics",
        ] {
            assert_eq!(known.label(path), path);
        }
        for path in [
            "/vox.backend.v1.CallService/Nope",
            "/vox.worker.v1.WorkerService/Start",
            "/x",
            "",
            "/vox.backend.v1.CallService/TransitionCall/",
        ] {
            assert_eq!(known.label(path), UNKNOWN, "{path}");
        }
    }
}
