//! Prometheus metrics shared by the binaries.

use prometheus_client::registry::{Metric, Registry};

/// Registers `metric` in `registry` under `name` and returns it for the caller to keep
/// (metrics are shared handles: the clone in the registry and the one returned are one).
pub fn registered<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}
